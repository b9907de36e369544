//! Parsing what the protocol scripts print. The formats are line-oriented
//! and versionless on purpose: `J ID STATUS` opens a job's section, its
//! `key=value` lines follow; unknown keys are ignored so newer wrappers can
//! add fields.

use std::collections::HashMap;

/// What a job directory says about a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RemoteStatus {
    /// `exit` exists: the job is over.
    Exit,
    /// The wrapper is alive.
    Running,
    /// The command ended and the wrapper holds the job for debugging
    /// (`held` exists; `code`, `until` and `hold` come with it).
    Held,
    /// The wrapper is gone and left no `exit` file.
    Dead,
    /// It runs where this connection cannot see (another node sharing the
    /// home directory, another container): no verdict.
    Elsewhere,
    /// `launch.lock` exists but the wrapper has not started (yet).
    Launching,
    /// Staged, never launched.
    Staged,
    /// No job directory, in a workroot that could be listed (`workroot_id`
    /// names its marker): proof, under the job's own marker.
    Absent,
    /// Nothing of the job can be seen and its workroot cannot be listed
    /// (unreadable, a stale mount): the host is not answering properly, so
    /// no verdict.
    Unseen,
}

impl RemoteStatus {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "exit" => Self::Exit,
            "running" => Self::Running,
            "held" => Self::Held,
            "dead" => Self::Dead,
            "elsewhere" => Self::Elsewhere,
            "launching" => Self::Launching,
            "staged" => Self::Staged,
            "absent" => Self::Absent,
            "unseen" => Self::Unseen,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
pub struct JobReport {
    pub status: RemoteStatus,
    pub fields: HashMap<String, String>,
}

impl JobReport {
    pub fn field(&self, k: &str) -> Option<&str> {
        self.fields
            .get(k)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    }

    pub fn int(&self, k: &str) -> Option<i64> {
        self.field(k).and_then(|v| v.trim().parse().ok())
    }

    /// Seconds-since-epoch field as milliseconds.
    pub fn time_ms(&self, k: &str) -> Option<i64> {
        self.int(k).map(|s| s * 1000)
    }
}

/// A host's answer to one probe.
#[derive(Debug, Clone, Default)]
pub struct HostReport {
    pub jobs: HashMap<String, JobReport>,
    /// Lines outside the grammar (`R …` from launch, `C …` from cancel,
    /// `Q …` from the quick probe), in order.
    pub other: Vec<String>,
}

impl HostReport {
    pub fn parse(text: &str) -> Self {
        let mut report = HostReport::default();
        let mut current: Option<(String, JobReport)> = None;
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("J ") {
                if let Some((id, job)) = current.take() {
                    report.jobs.insert(id, job);
                }
                let mut parts = rest.splitn(2, ' ');
                let id = parts.next().unwrap_or_default().to_string();
                if let Some(status) = parts.next().and_then(RemoteStatus::parse) {
                    current = Some((
                        id,
                        JobReport {
                            status,
                            fields: HashMap::new(),
                        },
                    ));
                }
            } else if let (Some((_, job)), Some((k, v))) = (current.as_mut(), line.split_once('='))
            {
                // First value wins: `exit` is printed before `started`.
                job.fields
                    .entry(k.to_string())
                    .or_insert_with(|| v.to_string());
            } else if !line.is_empty() && line != "END" {
                report.other.push(line.to_string());
            }
        }
        if let Some((id, job)) = current.take() {
            report.jobs.insert(id, job);
        }
        report
    }

    /// The first `PREFIX word…` line among the non-report lines.
    pub fn tagged(&self, prefix: &str) -> Option<&str> {
        self.other
            .iter()
            .find_map(|l| l.strip_prefix(prefix).and_then(|r| r.strip_prefix(' ')))
    }
}

/// The result of one `read_output` script.
#[derive(Debug, Clone, Default)]
pub struct OutputChunk {
    pub report: HostReport,
    pub out_size: u64,
    pub err_size: u64,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl OutputChunk {
    /// Split the header lines (up to and including `S …`) from the raw
    /// bytes that follow.
    pub fn parse(raw: &[u8]) -> Option<Self> {
        let mut pos = 0;
        let mut header = String::new();
        let sizes = loop {
            let end = raw[pos..].iter().position(|&b| b == b'\n')? + pos;
            let line = std::str::from_utf8(&raw[pos..end]).ok()?;
            pos = end + 1;
            if let Some(rest) = line.strip_prefix("S ") {
                let n: Vec<u64> = rest
                    .split(' ')
                    .map(|x| x.parse().ok())
                    .collect::<Option<Vec<_>>>()?;
                if n.len() != 4 {
                    return None;
                }
                break n;
            }
            header.push_str(line);
            header.push('\n');
        };
        let (n1, n2) = (sizes[2] as usize, sizes[3] as usize);
        if raw.len() < pos + n1 + n2 {
            return None;
        }
        Some(Self {
            report: HostReport::parse(&header),
            out_size: sizes[0],
            err_size: sizes[1],
            stdout: raw[pos..pos + n1].to_vec(),
            stderr: raw[pos + n1..pos + n1 + n2].to_vec(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_first_value_wins() {
        let text =
            "R adopted\nJ j1 exit\ncode=3\nended_at=5\npid=9\ncode=99\nJ j2 running\npid=7\nEND\n";
        let r = HostReport::parse(text);
        assert_eq!(r.tagged("R"), Some("adopted"));
        let j1 = &r.jobs["j1"];
        assert_eq!(j1.status, RemoteStatus::Exit);
        assert_eq!(j1.int("code"), Some(3));
        assert_eq!(j1.time_ms("ended_at"), Some(5000));
        assert_eq!(r.jobs["j2"].status, RemoteStatus::Running);
    }

    #[test]
    fn output_chunk_keeps_raw_bytes_exact() {
        let mut raw = b"J a running\nS 10 3 4 2\n".to_vec();
        raw.extend_from_slice(b"a\nb\x00");
        raw.extend_from_slice(b"\xffz");
        let c = OutputChunk::parse(&raw).unwrap();
        assert_eq!(c.stdout, b"a\nb\x00");
        assert_eq!(c.stderr, b"\xffz");
        assert_eq!((c.out_size, c.err_size), (10, 3));
        assert_eq!(c.report.jobs["a"].status, RemoteStatus::Running);
        assert!(OutputChunk::parse(b"S 1 1 5 0\nab").is_none(), "short data");
    }
}
