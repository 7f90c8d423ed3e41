//! Alloy's component graph, run as such: for an Alloy config that
//! promtail's model (each source through its own pipeline to every client)
//! cannot express, e.g. a `loki.relabel` between `loki.process`
//! components, a `loki.echo`, or a source forwarding to several receivers
//! that lead to different `loki.write` components.
//!
//! Each `loki.process`, `loki.relabel` and `loki.echo` is one task behind
//! one bounded channel, shared by everything forwarding to it (as in
//! Alloy: one instance per component); a `loki.write` is its endpoints'
//! clients. Where a component forwards to several receivers every entry
//! is copied to each and its ack split, so a source's position advances
//! only past what every `loki.write` reachable from it accepted (and every
//! `loki.echo` printed). The graph has no cycles (checked when it is
//! built), so the bounded channels cannot deadlock.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::ConfigError;
use crate::entry::{Entry, LabelSet, Labels};
use crate::pipeline::{Pipeline, StageConfig};
use crate::relabel::RelabelConfig;

/// Entries a component's channel holds before its senders wait.
const QUEUE: usize = 1024;

/// The components entries flow through after their sources.
#[derive(Debug, Clone, Default)]
pub struct Graph {
    /// In an order where every node forwards only to nodes before it.
    pub nodes: Vec<Node>,
    /// A scrape config's job name: the nodes its entries go to.
    pub sources: BTreeMap<String, Vec<usize>>,
}

#[derive(Debug, Clone)]
pub struct Node {
    /// The component's id (`loki.process.parse`).
    pub id: String,
    pub kind: NodeKind,
    /// Indices of the nodes it forwards to (all before this one).
    pub forward_to: Vec<usize>,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    /// `loki.process`: a pipeline of stages.
    Process(Vec<StageConfig>),
    /// `loki.relabel`: rules over each entry's labels; an entry left with
    /// no labels is dropped. Results are cached per label set, up to
    /// `max_cache_size` label sets.
    Relabel {
        rules: Vec<RelabelConfig>,
        max_cache_size: usize,
    },
    /// `loki.write`: indices of its endpoints' clients in `clients`.
    Write(Vec<usize>),
    /// `loki.echo`: prints entries to stdout.
    Echo,
}

impl Graph {
    /// Every pipeline builds (regexes, templates, ...).
    pub fn check(&self) -> Result<(), ConfigError> {
        for n in &self.nodes {
            if let NodeKind::Process(stages) = &n.kind {
                Pipeline::new(stages, &n.id)
                    .map_err(|e| ConfigError::new(format!("{}: {}", n.id, e.message)))?;
            }
        }
        Ok(())
    }

    /// The clients entries of `job` can reach.
    pub fn clients_reached(&self, job: &str) -> BTreeSet<usize> {
        let mut out = BTreeSet::new();
        let mut todo: Vec<usize> = self.sources.get(job).cloned().unwrap_or_default();
        let mut seen = BTreeSet::new();
        while let Some(i) = todo.pop() {
            if !seen.insert(i) {
                continue;
            }
            if let NodeKind::Write(clients) = &self.nodes[i].kind {
                out.extend(clients);
            }
            todo.extend(&self.nodes[i].forward_to);
        }
        out
    }
}

/// The graph as `# from -> to` comment lines (for -print-config-stderr,
/// whose YAML cannot hold it).
impl fmt::Display for Graph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = |to: &[usize]| {
            to.iter()
                .map(|i| self.nodes[*i].id.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        writeln!(
            f,
            "# The Alloy component graph these scrape configs run in (their pipeline_stages are in it):"
        )?;
        for (job, to) in &self.sources {
            writeln!(f, "#   {job} -> {}", names(to))?;
        }
        for n in self.nodes.iter().rev() {
            match &n.kind {
                NodeKind::Write(c) => writeln!(f, "#   {} = clients {c:?}", n.id)?,
                NodeKind::Echo => writeln!(f, "#   {} = stdout", n.id)?,
                _ => writeln!(f, "#   {} -> {}", n.id, names(&n.forward_to))?,
            }
        }
        Ok(())
    }
}

/// A started graph: its tasks, and where each source sends.
pub struct Running {
    pub tasks: Vec<JoinHandle<()>>,
    pub sources: BTreeMap<String, mpsc::Sender<Entry>>,
}

/// Starts every node (call inside a tokio runtime, after [`Graph::check`]).
/// `clients[i]` takes what is for client `i`; with `inspect`, each
/// `loki.process` prints what its stages change (`-inspect`).
pub fn start(
    graph: &Graph,
    clients: &[mpsc::Sender<Entry>],
    inspect: bool,
) -> Result<Running, String> {
    let mut tasks = Vec::new();
    let mut inputs: Vec<mpsc::Sender<Entry>> = Vec::with_capacity(graph.nodes.len());
    for n in &graph.nodes {
        let out = |tasks: &mut Vec<JoinHandle<()>>| {
            fan(
                n.forward_to.iter().map(|i| inputs[*i].clone()).collect(),
                tasks,
            )
        };
        let input = match &n.kind {
            NodeKind::Write(endpoints) => {
                let senders = endpoints
                    .iter()
                    .map(|i| {
                        clients
                            .get(*i)
                            .cloned()
                            .ok_or_else(|| format!("{}: no client {i}", n.id))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                fan(senders, &mut tasks)
            }
            NodeKind::Echo => {
                let (tx, rx) = mpsc::channel(QUEUE);
                tasks.push(tokio::task::spawn_blocking(move || {
                    echo(rx, std::io::stdout())
                }));
                tx
            }
            NodeKind::Process(stages) => {
                let mut pipeline = Pipeline::new(stages, &n.id).map_err(|e| e.to_string())?;
                if inspect {
                    pipeline.inspect(crate::pipeline::inspect::Inspector::stderr());
                }
                let out = out(&mut tasks);
                let (tx, rx) = mpsc::channel(QUEUE);
                tasks.push(tokio::spawn(crate::app::run_pipeline(
                    pipeline, rx, out, None,
                )));
                tx
            }
            NodeKind::Relabel {
                rules,
                max_cache_size,
            } => {
                let out = out(&mut tasks);
                let (tx, rx) = mpsc::channel(QUEUE);
                tasks.push(tokio::spawn(relabel(
                    rx,
                    out,
                    rules.clone(),
                    *max_cache_size,
                )));
                tx
            }
        };
        inputs.push(input);
    }
    let sources = graph
        .sources
        .iter()
        .map(|(job, to)| {
            let senders = to.iter().map(|i| inputs[*i].clone()).collect();
            (job.clone(), fan(senders, &mut tasks))
        })
        .collect();
    Ok(Running { tasks, sources })
}

/// One sender for several receivers: a copy of every entry to each, with
/// the ack split between them.
fn fan(mut to: Vec<mpsc::Sender<Entry>>, tasks: &mut Vec<JoinHandle<()>>) -> mpsc::Sender<Entry> {
    if to.len() == 1 {
        return to.pop().expect("one");
    }
    let (tx, rx) = mpsc::channel(QUEUE);
    tasks.push(tokio::spawn(crate::app::fan_out(rx, to)));
    tx
}

/// `loki.relabel`: the rules over each entry's labels. An entry the rules
/// drop, or leave without labels, is dropped (and completed: nothing of it
/// is to be delivered).
async fn relabel(
    mut rx: mpsc::Receiver<Entry>,
    out: mpsc::Sender<Entry>,
    rules: Vec<RelabelConfig>,
    max_cache_size: usize,
) {
    // Cached results are shared by the entries they are given to.
    let mut cache: HashMap<Labels, Option<Labels>> = HashMap::new();
    while let Some(mut e) = rx.recv().await {
        let result = match cache.get(&e.labels) {
            Some(r) => r.clone(),
            None => {
                let r = crate::relabel::process(LabelSet::clone(&e.labels), &rules)
                    .filter(|l| !l.is_empty())
                    .map(Labels::from);
                if max_cache_size > 0 {
                    // A bounded cache: started afresh when full.
                    if cache.len() >= max_cache_size {
                        cache.clear();
                    }
                    cache.insert(e.labels.clone(), r.clone());
                }
                r
            }
        };
        match result {
            Some(labels) => {
                e.labels = labels;
                if out.send(e).await.is_err() {
                    return;
                }
            }
            None => e.complete(),
        }
    }
}

/// `loki.echo`: each entry as a line on `out` (the dry run's format:
/// time, labels, line, structured metadata), then completed.
fn echo<W: std::io::Write>(mut rx: mpsc::Receiver<Entry>, mut out: W) {
    let mut buf = String::new();
    while let Some(e) = rx.blocking_recv() {
        buf.clear();
        crate::client::dry_run::format_entry(&mut buf, &e, &LabelSet::new());
        if let Err(err) = out.write_all(buf.as_bytes()).and_then(|()| out.flush()) {
            tracing::error!(error = %err, "loki.echo: writing an entry");
        }
        e.complete();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Progress;
    use crate::relabel::labels;

    fn rule(yaml: &str) -> RelabelConfig {
        serde_yaml_ng::from_str(yaml).unwrap()
    }

    fn entry(progress: &std::sync::Arc<Progress>, end: u64, l: LabelSet) -> Entry {
        let mut e = Entry::new(l, format!("line {end}"));
        e.ack = Some(progress.track(end));
        e
    }

    /// source -> relabel -> {write 0, echo}; and source -> write 1
    /// directly: client 0 sees relabeled entries, client 1 the originals,
    /// an entry the relabel drops goes to client 1 only, and the position
    /// waits for both clients.
    #[tokio::test]
    async fn partial_fan_out_waits_for_every_writer_reached() {
        let graph = Graph {
            nodes: vec![
                Node {
                    id: "loki.write.a".into(),
                    kind: NodeKind::Write(vec![0]),
                    forward_to: vec![],
                },
                Node {
                    id: "loki.write.b".into(),
                    kind: NodeKind::Write(vec![1]),
                    forward_to: vec![],
                },
                Node {
                    id: "loki.relabel.r".into(),
                    kind: NodeKind::Relabel {
                        rules: vec![
                            rule("source_labels: [app]\nregex: noise\naction: drop\n"),
                            rule("source_labels: [app]\ntarget_label: service\n"),
                        ],
                        max_cache_size: 1,
                    },
                    forward_to: vec![0],
                },
            ],
            sources: [("src".to_string(), vec![2, 1])].into(),
        };
        assert_eq!(graph.clients_reached("src"), BTreeSet::from([0, 1]));
        let (a_tx, mut a_rx) = mpsc::channel(16);
        let (b_tx, mut b_rx) = mpsc::channel(16);
        let running = start(&graph, &[a_tx, b_tx], false).unwrap();
        let src = running.sources["src"].clone();
        let p = Progress::new(0);
        src.send(entry(&p, 10, labels([("app", "web")])))
            .await
            .unwrap();
        src.send(entry(&p, 20, labels([("app", "noise")])))
            .await
            .unwrap();
        src.send(entry(&p, 30, labels([("app", "web")])))
            .await
            .unwrap();
        let a: Vec<Entry> = vec![a_rx.recv().await.unwrap(), a_rx.recv().await.unwrap()];
        let b: Vec<Entry> = vec![
            b_rx.recv().await.unwrap(),
            b_rx.recv().await.unwrap(),
            b_rx.recv().await.unwrap(),
        ];
        assert_eq!(
            a.iter().map(|e| e.labels.clone()).collect::<Vec<_>>(),
            [
                labels([("app", "web"), ("service", "web")]),
                labels([("app", "web"), ("service", "web")])
            ]
        );
        assert_eq!(
            b.iter().map(|e| e.line.as_str()).collect::<Vec<_>>(),
            ["line 10", "line 20", "line 30"]
        );
        let mut a = a.into_iter();
        let mut b = b.into_iter();
        a.next().unwrap().complete();
        assert_eq!(p.committed(), 0, "client b has not accepted line 10");
        b.next().unwrap().complete();
        assert_eq!(p.committed(), 10);
        b.next().unwrap().complete();
        assert_eq!(p.committed(), 20, "the dropped line needed client b only");
        b.next().unwrap().complete();
        assert_eq!(p.committed(), 20);
        a.next().unwrap().complete();
        assert_eq!(p.committed(), 30);
        drop(src);
        drop(running.sources);
        for t in running.tasks {
            t.await.unwrap();
        }
    }

    #[test]
    fn echo_prints_and_completes() {
        let (tx, rx) = mpsc::channel(4);
        let p = Progress::new(0);
        let mut e = entry(&p, 5, labels([("job", "x")]));
        e.timestamp = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1);
        tx.blocking_send(e).unwrap();
        drop(tx);
        let mut out = Vec::new();
        echo(rx, &mut out);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "1970-01-01T00:00:01+0000\t{job=\"x\"}\tline 5\n"
        );
        assert_eq!(p.committed(), 5);
    }
}
