//! A host's NVIDIA GPUs as `nvidia-smi` lists them: the one parser of its
//! CSV output, shared by `host check` (the inventory), the job probe (which
//! processes hold a GPU) and `doctor`, so all three read the same fields
//! the same way.
//!
//! Queries (both `--format=csv,noheader,nounits`):
//! - [`QUERY_GPUS`]: `index, uuid, name, memory.used, memory.total,
//!   utilization.gpu` per GPU;
//! - [`QUERY_APPS`]: `pid, gpu_uuid, used_memory` per compute process.
//!
//! A field nvidia-smi cannot give is printed as `[N/A]` or `[Not
//! Supported]` (MIG instances, some boards): `None` here. The name is the
//! only free-text field and may hold ", ", so fields are taken from both
//! ends of the line.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The per-GPU query.
pub const QUERY_GPUS: &str = "nvidia-smi --query-gpu=index,uuid,name,memory.used,memory.total,utilization.gpu --format=csv,noheader,nounits";

/// The per-process query.
pub const QUERY_APPS: &str =
    "nvidia-smi --query-compute-apps=pid,gpu_uuid,used_memory --format=csv,noheader,nounits";

/// One GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Gpu {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    pub memory_used_mib: Option<u64>,
    pub memory_total_mib: Option<u64>,
    pub utilization_pct: Option<u64>,
}

/// One process holding a GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuApp {
    pub pid: u32,
    pub gpu_uuid: String,
    pub used_memory_mib: Option<u64>,
}

/// One GPU process of a job (`show`, `ps --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobGpu {
    pub pid: u32,
    pub gpu_uuid: String,
    /// From the host's inventory (`host check`); `None` if not listed there.
    pub gpu_index: Option<u32>,
    pub used_memory_mib: Option<u64>,
}

/// What a host said of its GPUs.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Inventory {
    /// Not asked (`local`, or an older record).
    #[default]
    Unknown,
    /// No `nvidia-smi` on the host: no NVIDIA GPUs (not an error).
    NoTool,
    /// `nvidia-smi` answered (possibly no GPU).
    Gpus(Vec<Gpu>),
    /// `nvidia-smi` is there but failed (a driver that does not answer).
    Failed(String),
}

/// A number field: `None` for `[N/A]`, `[Not Supported]` or anything else
/// that is not a number (rounded: some versions print decimals).
fn number(s: &str) -> Option<u64> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v.round() as u64)
}

fn fields(line: &str) -> Vec<&str> {
    line.split(',').map(str::trim).collect()
}

/// One line of [`QUERY_GPUS`]; `None` for a line that is not one (an
/// error message).
pub fn parse_gpu(line: &str) -> Option<Gpu> {
    let f = fields(line);
    let n = f.len();
    if n < 6 {
        return None;
    }
    let index = f[0].parse::<u32>().ok()?;
    let uuid = f[1];
    if uuid.is_empty() || uuid.contains(' ') {
        return None;
    }
    Some(Gpu {
        index,
        uuid: uuid.to_string(),
        name: f[2..n - 3].join(", "),
        memory_used_mib: number(f[n - 3]),
        memory_total_mib: number(f[n - 2]),
        utilization_pct: number(f[n - 1]),
    })
}

/// One line of [`QUERY_APPS`].
pub fn parse_app(line: &str) -> Option<GpuApp> {
    let f = fields(line);
    if f.len() != 3 || f[1].is_empty() {
        return None;
    }
    Some(GpuApp {
        pid: f[0].parse().ok()?,
        gpu_uuid: f[1].to_string(),
        used_memory_mib: number(f[2]),
    })
}

/// The whole output of [`QUERY_GPUS`] and its exit status. A failure, or
/// output in which no line parses while some say something, is `Failed`
/// with the first line said.
pub fn parse_inventory(status: i32, output: &str) -> Inventory {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    let gpus: Vec<Gpu> = lines.iter().filter_map(|l| parse_gpu(l)).collect();
    if status != 0 || (gpus.is_empty() && !lines.is_empty()) {
        let said = lines.first().map_or("no output", |l| l.trim());
        return Inventory::Failed(format!("nvidia-smi exited with status {status}: {said}"));
    }
    Inventory::Gpus(gpus)
}

/// sh that prints the inventory for [`parse_report`]: `GPUS none` without
/// `nvidia-smi`, else `GPUS STATUS` and its output lines as `GPU LINE`.
pub fn inventory_script() -> String {
    format!(
        r#"if command -v nvidia-smi >/dev/null 2>&1; then
  belay_g=$({QUERY_GPUS} 2>&1); echo "GPUS $?"
  printf '%s\n' "$belay_g" | while IFS= read -r l; do printf 'GPU %s\n' "$l"; done
else echo "GPUS none"; fi
"#
    )
}

/// sh that lists the GPU processes for [`parse_apps_report`]: nothing
/// without `nvidia-smi`; else `GA STATUS`, then per process `G SID JOB
/// LINE`: its session id and the `BELAY_JOB_ID` in its environment (`-`
/// where unreadable) and the query's line. One nvidia-smi for all jobs.
pub fn apps_script() -> String {
    format!(
        r#"if command -v nvidia-smi >/dev/null 2>&1; then
  belay_ga=$({QUERY_APPS} 2>/dev/null); echo "GA $?"
  printf '%s\n' "$belay_ga" | while IFS= read -r l; do
    p=${{l%%,*}}
    case $p in ''|*[!0-9]*) continue ;; esac
    gs=-; gl=
    read -r gl 2>/dev/null < "/proc/$p/stat" && {{ gl=${{gl##*) }}; set -f; set -- $gl; set +f; gs=${{4:--}}; }}
    gj=$(tr '\0' '\n' 2>/dev/null < "/proc/$p/environ" | sed -n 's/^BELAY_JOB_ID=//p' | head -n 1)
    case $gj in ''|*[!0-9a-zA-Z_-]*) gj=- ;; esac
    echo "G $gs $gj $l"
  done
fi
"#
    )
}

/// One `G SID JOB LINE` of [`apps_script`]: (session, job id, process).
pub fn parse_apps_line(line: &str) -> Option<(Option<u32>, Option<String>, GpuApp)> {
    let rest = line.strip_prefix("G ")?;
    let mut it = rest.splitn(3, ' ');
    let sid = it.next()?.parse().ok();
    let job = it.next().filter(|j| *j != "-").map(str::to_string);
    let app = parse_app(it.next()?)?;
    Some((sid, job, app))
}

/// Reads what [`inventory_script`] printed (other lines are ignored).
pub fn parse_report(text: &str) -> Inventory {
    let mut status = None;
    let mut body = String::new();
    for line in text.lines() {
        if let Some(s) = line.strip_prefix("GPUS ") {
            if s.trim() == "none" {
                return Inventory::NoTool;
            }
            status = s.trim().parse::<i32>().ok();
        } else if let Some(l) = line.strip_prefix("GPU ") {
            body.push_str(l);
            body.push('\n');
        }
    }
    match status {
        Some(s) => parse_inventory(s, &body),
        None => Inventory::Unknown,
    }
}

/// The GPUs as JSON (`host show`, `host check`).
pub fn gpus_json(gpus: &[Gpu]) -> Value {
    json!(gpus)
}

/// `N (U% busy)`: the count and mean utilization (`host list`), `-` for none.
pub fn summary(gpus: &[Gpu]) -> String {
    match (gpus.len(), mean_utilization(gpus)) {
        (0, _) => "-".into(),
        (n, Some(u)) => format!("{n} ({u}%)"),
        (n, None) => format!("{n}"),
    }
}

/// The mean utilization of the GPUs that report one.
pub fn mean_utilization(gpus: &[Gpu]) -> Option<u64> {
    let known: Vec<u64> = gpus.iter().filter_map(|g| g.utilization_pct).collect();
    if known.is_empty() {
        return None;
    }
    Some((known.iter().sum::<u64>() as f64 / known.len() as f64).round() as u64)
}

/// One GPU for people: `0 NVIDIA H100 80GB HBM3 (1.2/79.6 GiB, 35% busy)`.
pub fn describe(g: &Gpu) -> String {
    let gib = |m: Option<u64>| m.map_or("?".to_string(), |m| format!("{:.1}", m as f64 / 1024.0));
    let busy = g
        .utilization_pct
        .map_or("? busy".to_string(), |u| format!("{u}% busy"));
    format!(
        "{} {} ({}/{} GiB, {busy})",
        g.index,
        g.name,
        gib(g.memory_used_mib),
        gib(g.memory_total_mib)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    // The output shapes NVIDIA documents for these queries (nvidia-smi
    // `--help-query-gpu` / `--help-query-compute-apps`, csv,noheader,nounits)
    // on H100 and A100 nodes, with made-up UUIDs: published shapes, not
    // captured on a device here.
    pub const H100X2: &str = "0, GPU-3f6a1b2c-0d4e-5f60-7182-93a4b5c6d7e8, NVIDIA H100 80GB HBM3, 1234, 81559, 35\n\
        1, GPU-9b8a7c6d-5e4f-3a2b-1c0d-e9f8a7b6c5d4, NVIDIA H100 80GB HBM3, 0, 81559, 0\n";
    pub const A100_MIG: &str = "0, GPU-11111111-2222-3333-4444-555555555555, NVIDIA A100-SXM4-40GB, [N/A], 40960, [Not Supported]\n";
    const APPS: &str = "4242, GPU-3f6a1b2c-0d4e-5f60-7182-93a4b5c6d7e8, 1180\n\
        77, GPU-9b8a7c6d-5e4f-3a2b-1c0d-e9f8a7b6c5d4, [N/A]\n";

    #[test]
    fn h100_lines_parse_with_names_holding_spaces() {
        let Inventory::Gpus(g) = parse_inventory(0, H100X2) else {
            panic!("not parsed")
        };
        assert_eq!(g.len(), 2);
        assert_eq!(
            g[0],
            Gpu {
                index: 0,
                uuid: "GPU-3f6a1b2c-0d4e-5f60-7182-93a4b5c6d7e8".into(),
                name: "NVIDIA H100 80GB HBM3".into(),
                memory_used_mib: Some(1234),
                memory_total_mib: Some(81559),
                utilization_pct: Some(35),
            }
        );
        assert_eq!(summary(&g), "2 (18%)");
        assert_eq!(
            describe(&g[0]),
            "0 NVIDIA H100 80GB HBM3 (1.2/79.6 GiB, 35% busy)"
        );
    }

    #[test]
    fn not_available_and_not_supported_are_none_and_commas_in_names_survive() {
        let g = parse_gpu(A100_MIG.trim()).unwrap();
        assert_eq!(g.memory_used_mib, None);
        assert_eq!(g.utilization_pct, None);
        assert_eq!(g.memory_total_mib, Some(40960));
        assert_eq!(summary(&[g]), "1");
        let odd = parse_gpu("3,GPU-x,Some, Vendor GPU,1,2,3").unwrap();
        assert_eq!(odd.name, "Some, Vendor GPU");
        assert_eq!(odd.utilization_pct, Some(3));
    }

    #[test]
    fn compute_apps_parse() {
        let a: Vec<GpuApp> = APPS.lines().filter_map(parse_app).collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].pid, 4242);
        assert_eq!(a[0].used_memory_mib, Some(1180));
        assert_eq!(a[1].used_memory_mib, None);
        assert!(parse_app("No running processes found").is_none());
    }

    #[test]
    fn a_driver_that_does_not_answer_is_a_failure_and_no_tool_is_none() {
        let msg = "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver. Make sure that the latest NVIDIA driver is installed and running.";
        match parse_inventory(9, msg) {
            Inventory::Failed(e) => assert!(e.contains("status 9: NVIDIA-SMI has failed"), "{e}"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(parse_inventory(0, msg), Inventory::Failed(_)));
        assert_eq!(parse_inventory(0, ""), Inventory::Gpus(vec![]));
        assert_eq!(parse_report("GPUS none\n"), Inventory::NoTool);
        assert_eq!(parse_report("x\n"), Inventory::Unknown);
        let text: String = std::iter::once("GPUS 0\n".to_string())
            .chain(H100X2.lines().map(|l| format!("GPU {l}\n")))
            .collect();
        assert!(matches!(parse_report(&text), Inventory::Gpus(g) if g.len() == 2));
    }

    #[test]
    fn the_script_runs_here_without_nvidia_smi() {
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(inventory_script())
            .env("PATH", "/nonexistent")
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "GPUS none\n");
    }
}
