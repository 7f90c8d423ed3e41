//! `node_processes_*`: processes and threads by state from /proc/<pid>/stat
//! and /proc/<pid>/task/<tid>/stat, thread count from the processes'
//! `num_threads`, and the limits in /proc/sys/kernel/{pid_max,threads-max}.
//! Processes and threads that exit while we scan are skipped, as
//! node_exporter does; any other read or parse error fails the collector.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::anyhow;
use exporter_toolkit::exposition::MetricSet;

use super::{no_flags, CollectorSpec};
use crate::collector::{Collector, NoData, Paths};
use crate::helpers::read_u64;

pub const SPEC: CollectorSpec = CollectorSpec {
    name: "processes",
    default_enabled: false,
    flags: no_flags,
    build: |f| {
        Ok(Box::new(Processes {
            paths: f.paths.clone(),
        }))
    },
};

/// The fields of /proc/<pid>/stat this collector uses.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcStat<'a> {
    pub comm: &'a str,
    pub state: &'a str,
    pub num_threads: u64,
}

/// Parses /proc/<pid>/stat. The command name is between the first '(' and
/// the last ')', and may itself hold spaces and parentheses.
pub fn parse_proc_stat<'a>(text: &'a str, path: &Path) -> anyhow::Result<ProcStat<'a>> {
    let (Some(l), Some(r)) = (text.find('('), text.rfind(')')) else {
        return Err(anyhow!(
            "parsing {}: no '(command)' field in {:?}",
            path.display(),
            truncate(text)
        ));
    };
    let comm = text.get(l + 1..r).unwrap_or("");
    let rest = text.get(r + 1..).unwrap_or("");
    // After the command: state(3) ppid pgrp session tty_nr tpgid flags minflt
    // cminflt majflt cmajflt utime stime cutime cstime priority nice
    // num_threads(20).
    let mut fields = rest.split_ascii_whitespace();
    let state = fields.next().ok_or_else(|| {
        anyhow!(
            "parsing {}: no state after the command in {:?}",
            path.display(),
            truncate(text)
        )
    })?;
    let num_threads = fields.nth(16).ok_or_else(|| {
        anyhow!(
            "parsing {}: too few fields (no num_threads) in {:?}",
            path.display(),
            truncate(text)
        )
    })?;
    let num_threads = num_threads.parse().map_err(|_| {
        anyhow!(
            "parsing {}: num_threads {num_threads:?} is not an unsigned integer",
            path.display()
        )
    })?;
    Ok(ProcStat {
        comm,
        state,
        num_threads,
    })
}

fn truncate(s: &str) -> &str {
    let end = s.char_indices().nth(80).map_or(s.len(), |(i, _)| i);
    s.get(..end).unwrap_or(s)
}

/// Whether an I/O error means the process or thread went away.
fn vanished(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Reads `path` into `buf`; `Ok(false)` if the task vanished.
fn read_into(path: &Path, buf: &mut String) -> anyhow::Result<bool> {
    buf.clear();
    let res = std::fs::File::open(path).and_then(|mut f| f.read_to_string(buf));
    match res {
        Ok(_) => Ok(true),
        Err(e) if vanished(&e) => Ok(false),
        Err(e) => Err(anyhow!("reading {}: {e}", path.display())),
    }
}

/// Numeric entries of a directory (pids or tids); `None` if it vanished.
fn numeric_entries(dir: &Path) -> anyhow::Result<Option<Vec<u32>>> {
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if vanished(&e) => return Ok(None),
        Err(e) => return Err(anyhow!("listing {}: {e}", dir.display())),
    };
    let mut ids = Vec::new();
    for entry in rd {
        let entry = match entry {
            Ok(e) => e,
            Err(e) if vanished(&e) => continue,
            Err(e) => return Err(anyhow!("listing {}: {e}", dir.display())),
        };
        if let Some(id) = entry.file_name().to_str().and_then(|n| n.parse().ok()) {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(Some(ids))
}

/// Formats an id into a reused buffer.
fn id_str(buf: &mut String, id: u32) -> &str {
    use std::fmt::Write as _;
    buf.clear();
    let _ = write!(buf, "{id}");
    buf
}

#[derive(Default)]
struct Counts {
    pids: u64,
    threads: u64,
    states: BTreeMap<String, u64>,
    thread_states: BTreeMap<String, u64>,
}

fn bump(map: &mut BTreeMap<String, u64>, key: &str) {
    match map.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            map.insert(key.to_string(), 1);
        }
    }
}

struct Processes {
    paths: Paths,
}

impl Processes {
    fn scan(&self) -> anyhow::Result<Counts> {
        let proc_dir = &self.paths.procfs;
        let pids = match numeric_entries(proc_dir)? {
            Some(p) => p,
            None => return Err(NoData(format!("{} does not exist", proc_dir.display())).into()),
        };
        let mut counts = Counts::default();
        let mut buf = String::with_capacity(512);
        let mut path = PathBuf::with_capacity(proc_dir.as_os_str().len() + 32);
        let mut num = String::with_capacity(10);
        for pid in pids {
            path.clear();
            path.push(proc_dir);
            path.push(id_str(&mut num, pid));
            path.push("stat");
            if !read_into(&path, &mut buf)? {
                continue;
            }
            let stat = parse_proc_stat(&buf, &path)?;
            counts.pids += 1;
            counts.threads += stat.num_threads;
            bump(&mut counts.states, stat.state);
            let pid_state = stat.state.to_string();

            path.pop();
            path.push("task");
            let Some(tids) = numeric_entries(&path)? else {
                continue;
            };
            for tid in tids {
                if tid == pid {
                    bump(&mut counts.thread_states, &pid_state);
                    continue;
                }
                path.push(id_str(&mut num, tid));
                path.push("stat");
                let found = read_into(&path, &mut buf)?;
                if found {
                    let t = parse_proc_stat(&buf, &path)?;
                    bump(&mut counts.thread_states, t.state);
                }
                path.pop();
                path.pop();
            }
        }
        Ok(counts)
    }
}

impl Collector for Processes {
    fn update(&self, out: &mut MetricSet) -> anyhow::Result<()> {
        let counts = self.scan()?;
        out.gauge(
            "node_processes_threads",
            "Allocated threads in system",
            &[],
            counts.threads as f64,
        );
        let max_threads = read_u64(&self.paths.proc("sys/kernel/threads-max"))?;
        out.gauge(
            "node_processes_max_threads",
            "Limit of threads in the system",
            &[],
            max_threads as f64,
        );
        for (state, n) in &counts.states {
            out.gauge(
                "node_processes_state",
                "Number of processes in each state.",
                &[("state", state)],
                *n as f64,
            );
        }
        for (state, n) in &counts.thread_states {
            out.gauge(
                "node_processes_threads_state",
                "Number of threads in each state.",
                &[("thread_state", state)],
                *n as f64,
            );
        }
        let pid_max = read_u64(&self.paths.proc("sys/kernel/pid_max"))?;
        out.gauge(
            "node_processes_pids",
            "Number of PIDs",
            &[],
            counts.pids as f64,
        );
        out.gauge(
            "node_processes_max_processes",
            "Number of max PIDs limit",
            &[],
            pid_max as f64,
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_names_with_spaces_and_parentheses() {
        let text =
            "1234 ((sd-pam) x) S 1233 1233 1233 0 -1 1077936448 50 0 0 0 0 0 0 0 20 0 7 0 1410 \
                    24928256 1190 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = parse_proc_stat(text, Path::new("stat")).unwrap();
        assert_eq!(s.comm, "(sd-pam) x");
        assert_eq!(s.state, "S");
        assert_eq!(s.num_threads, 7);
        let text = "42 (Web Content) R 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 31 0\n";
        let s = parse_proc_stat(text, Path::new("stat")).unwrap();
        assert_eq!(s.comm, "Web Content");
        assert_eq!(s.num_threads, 31);
    }

    #[test]
    fn truncated_or_garbage_stat_is_an_error_naming_the_file() {
        let p = Path::new("/proc/42/stat");
        let err = parse_proc_stat("42 (bash) S 1 2 3", p)
            .unwrap_err()
            .to_string();
        assert!(err.contains("/proc/42/stat"), "{err}");
        assert!(parse_proc_stat("garbage", p).is_err());
        assert!(parse_proc_stat("42 (bash)", p).is_err());
        assert!(parse_proc_stat("42 (bash) S 1 2 3 0 -1 0 0 0 0 0 0 0 0 0 20 0 x 0", p).is_err());
    }

    #[test]
    fn scans_a_tree_where_tasks_vanish() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let w = |rel: &str, body: &str| {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, body).unwrap();
        };
        let stat = |pid: u32, comm: &str, state: &str, threads: u32| {
            format!("{pid} ({comm}) {state} 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 {threads} 0 5\n")
        };
        w("1/stat", &stat(1, "init", "S", 1));
        w("1/task/1/stat", &stat(1, "init", "S", 1));
        w("7/stat", &stat(7, "a b) (c", "R", 3));
        w("7/task/7/stat", &stat(7, "a b) (c", "R", 3));
        w("7/task/8/stat", &stat(8, "worker", "D", 3));
        // Thread 9 exited between listing and reading.
        std::fs::create_dir_all(root.join("7/task/9")).unwrap();
        // Process 8 exited: its directory is left without a stat file.
        std::fs::create_dir_all(root.join("8")).unwrap();
        w("self/stat", "not a pid");
        let c = Processes {
            paths: Paths {
                procfs: root.to_path_buf(),
                ..Paths::default()
            },
        };
        let counts = c.scan().unwrap();
        assert_eq!(counts.pids, 2);
        assert_eq!(counts.threads, 4);
        assert_eq!(counts.states.get("R"), Some(&1));
        assert_eq!(counts.states.get("S"), Some(&1));
        assert_eq!(counts.thread_states.get("D"), Some(&1));
        assert_eq!(counts.thread_states.get("R"), Some(&1));
        assert_eq!(counts.thread_states.values().sum::<u64>(), 3);
    }
}
