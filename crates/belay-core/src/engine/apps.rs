//! The engine's side of apps (`crate::apps`): whether an app job listens
//! yet, and clearing its socket once the job is over.

use super::Engine;
use crate::apps::scripts::{self, Readiness};
use crate::error::{CoreError, Result};
use crate::job::Job;

impl Engine {
    /// One look at whether `job`'s app listens yet (one round trip).
    pub fn app_readiness(&mut self, job: &Job) -> Result<Readiness> {
        let transport = self.transport(&job.host)?;
        let dir = Self::dir_word(&*transport, job);
        let out = transport.run_script(&scripts::ready(&dir))?;
        Readiness::parse(&String::from_utf8_lossy(&out.stdout)).ok_or_else(|| CoreError::Protocol {
            host: job.host.clone(),
            message: format!(
                "unreadable answer about app job {}: {}",
                job.id,
                out.stderr_text()
            ),
        })
    }

    /// After an app's job ended: remove its socket if nothing accepts on
    /// it any more (checked with a connect first, never blindly). Returns
    /// what was done, for the user.
    pub fn clear_app_socket(&mut self, job: &Job) -> Result<String> {
        let transport = self.transport(&job.host)?;
        let dir = Self::dir_word(&*transport, job);
        let out = transport.run_script(&scripts::clear_socket(&dir))?;
        let text = String::from_utf8_lossy(&out.stdout);
        Ok(text
            .lines()
            .find_map(|l| l.strip_prefix("R "))
            .unwrap_or("socket left as it was")
            .to_string())
    }
}
