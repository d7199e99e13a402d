//! Loghub: log formats in the `<Field>` header syntax, grouping / parsing accuracy, and the
//! evaluation of a `loghub2k`-style folder.

use crate::{MinerConfig, TemplateError, TemplateId, TemplateMiner};
use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::Path;
use std::time::Instant;

mod csv;
pub use csv::parse_csv;

/// A compiled Loghub log format: `<Name>` is a lazily matched field, a space matches one or
/// more whitespace characters, everything else is a regular expression; the whole line must
/// match.
#[derive(Clone, Debug)]
pub struct LogFormat {
    format: String,
    fields: Vec<String>,
    re: Regex,
    content: Option<usize>,
}

impl LogFormat {
    pub fn parse(format: &str) -> Result<LogFormat, TemplateError> {
        let err = |reason: String| TemplateError::Format {
            format: format.to_string(),
            reason,
        };
        let mut pattern = String::from("^");
        let mut fields = Vec::new();
        let mut rest = format;
        while let Some(open) = rest.find('<') {
            let Some(close_rel) = rest[open..].find('>') else {
                return Err(err("a '<' without a closing '>'".into()));
            };
            let name = &rest[open + 1..open + close_rel];
            if name.contains('<') {
                return Err(err(format!("nested '<' in field {name:?}")));
            }
            push_literal(&mut pattern, &rest[..open]);
            let valid = !name.is_empty()
                && name
                    .chars()
                    .next()
                    .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(err(format!(
                    "field name {name:?} must be letters, digits or '_'"
                )));
            }
            if fields.iter().any(|f| f == name) {
                return Err(err(format!("field {name:?} appears twice")));
            }
            pattern.push_str(&format!("(?P<{name}>.*?)"));
            fields.push(name.to_string());
            rest = &rest[open + close_rel + 1..];
        }
        push_literal(&mut pattern, rest);
        pattern.push('$');
        if fields.is_empty() {
            return Err(err("no <Field> in format".into()));
        }
        let re = Regex::new(&pattern).map_err(|e| err(format!("not a valid pattern: {e}")))?;
        let content = fields.iter().position(|f| f == "Content");
        Ok(LogFormat {
            format: format.to_string(),
            fields,
            re,
            content,
        })
    }

    pub fn format(&self) -> &str {
        &self.format
    }

    pub fn fields(&self) -> &[String] {
        &self.fields
    }

    /// The line's fields in format order, or `None` if the line does not match.
    pub fn split<'a>(&self, line: &'a str) -> Option<Vec<(&str, &'a str)>> {
        let caps = self.re.captures(line.trim())?;
        Some(
            self.fields
                .iter()
                .map(|f| (f.as_str(), caps.name(f).map_or("", |m| m.as_str())))
                .collect(),
        )
    }

    /// The `<Content>` field, or `None` if the line does not match (or there is no Content).
    pub fn content<'a>(&self, line: &'a str) -> Option<&'a str> {
        self.content?;
        let caps = self.re.captures(line.trim())?;
        caps.name("Content").map(|m| m.as_str())
    }
}

fn push_literal(pattern: &mut String, lit: &str) {
    // A run of spaces matches one or more whitespace characters.
    let mut in_space = false;
    for ch in lit.chars() {
        if ch == ' ' {
            if !in_space {
                pattern.push_str(r"\s+");
            }
            in_space = true;
        } else {
            in_space = false;
            pattern.push(ch);
        }
    }
}

/// The published log format of a Loghub system (the eight of the datasets README, plus the
/// other Loghub systems as published by the logparser benchmark).
pub fn known_format(system: &str) -> Option<&'static str> {
    Some(match system {
        "HDFS" => "<Date> <Time> <Pid> <Level> <Component>: <Content>",
        "Hadoop" => r"<Date> <Time> <Level> \[<Process>\] <Component>: <Content>",
        "Spark" => "<Date> <Time> <Level> <Component>: <Content>",
        "Zookeeper" => r"<Date> <Time> - <Level>  \[<Node>:<Component>@<Id>\] - <Content>",
        "BGL" => {
            "<Label> <Timestamp> <Date> <Node> <Time> <NodeRepeat> <Type> <Component> <Level> <Content>"
        }
        "Apache" => r"\[<Time>\] \[<Level>\] <Content>",
        "OpenSSH" => r"<Date> <Day> <Time> <Component> sshd\[<Pid>\]: <Content>",
        "Thunderbird" => {
            r"<Label> <Timestamp> <Date> <User> <Month> <Day> <Time> <Location> <Component>(\[<PID>\])?: <Content>"
        }
        "HPC" => "<LogId> <Node> <Component> <State> <Time> <Flag> <Content>",
        "Linux" => r"<Month> <Date> <Time> <Level> <Component>(\[<PID>\])?: <Content>",
        "Android" => "<Date> <Time>  <Pid>  <Tid> <Level> <Component>: <Content>",
        "HealthApp" => r"<Time>\|<Component>\|<Pid>\|<Content>",
        "Windows" => "<Date> <Time>, <Level>                  <Component>    <Content>",
        "Mac" => r"<Month>  <Date> <Time> <User> <Component>\[<PID>\]( \(<Address>\))?: <Content>",
        "Proxifier" => r"\[<Time>\] <Program> - <Content>",
        "OpenStack" => r"<Logrecord> <Date> <Time> <Pid> <Level> <Component> \[<ADDR>\] <Content>",
        _ => return None,
    })
}

/// Grouping accuracy: the share of lines whose predicted group holds exactly the lines of
/// their true group. Extra entries of the longer slice are ignored.
pub fn grouping_accuracy(truth: &[&str], predicted: &[TemplateId]) -> f64 {
    let n = truth.len().min(predicted.len());
    if n == 0 {
        return 0.0;
    }
    let mut truth_size: HashMap<&str, usize> = HashMap::new();
    for t in &truth[..n] {
        *truth_size.entry(t).or_default() += 1;
    }
    let mut groups: HashMap<TemplateId, Vec<usize>> = HashMap::new();
    for (i, p) in predicted[..n].iter().enumerate() {
        groups.entry(*p).or_default().push(i);
    }
    let mut correct = 0usize;
    for lines in groups.values() {
        let first = truth[lines[0]];
        if lines.iter().all(|&i| truth[i] == first) && truth_size.get(first) == Some(&lines.len()) {
            correct += lines.len();
        }
    }
    correct as f64 / n as f64
}

fn norm_ws(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Parsing accuracy: the share of lines whose predicted template string equals the true one
/// (whitespace runs compared as one space).
pub fn parsing_accuracy(truth_templates: &[&str], predicted_templates: &[&str]) -> f64 {
    let n = truth_templates.len().min(predicted_templates.len());
    if n == 0 {
        return 0.0;
    }
    let ok = truth_templates
        .iter()
        .zip(predicted_templates)
        .filter(|(t, p)| t == p || norm_ws(t) == norm_ws(p))
        .count();
    ok as f64 / n as f64
}

/// One system's evaluation.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct SystemScore {
    pub system: String,
    pub lines: usize,
    pub ga: f64,
    pub pa: f64,
    /// Mining throughput (message bodies through a fresh miner, `mine_id`).
    pub lines_per_sec: f64,
    /// Lines whose content came from the CSV's `Content` column because the format did not
    /// match (or no format is known for the system).
    pub fallback_lines: usize,
    pub templates_found: usize,
    pub templates_truth: usize,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TemplateError + '_ {
    move |source| TemplateError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Evaluates every system folder `S` of `dir` holding `S_2k.log` and
/// `S_2k.log_structured_corrected.csv` (folders without them are skipped), with the default
/// miner configuration, in name order.
pub fn evaluate_dir(dir: &Path) -> Result<Vec<SystemScore>, TemplateError> {
    let mut systems: Vec<_> = std::fs::read_dir(dir)
        .map_err(io_err(dir))?
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| e.file_name().to_str().map(str::to_string))
        .collect();
    systems.sort();
    let mut out = Vec::new();
    for s in systems {
        let log = dir.join(&s).join(format!("{s}_2k.log"));
        let csv = dir
            .join(&s)
            .join(format!("{s}_2k.log_structured_corrected.csv"));
        if !log.is_file() || !csv.is_file() {
            continue;
        }
        out.push(evaluate_system(&s, &log, &csv, &MinerConfig::default())?);
    }
    if out.is_empty() {
        return Err(TemplateError::Dataset {
            path: dir.display().to_string(),
            reason: "no system folder S with S_2k.log and S_2k.log_structured_corrected.csv".into(),
        });
    }
    Ok(out)
}

/// Evaluates one system from its raw log and structured ground-truth CSV.
pub fn evaluate_system(
    system: &str,
    log: &Path,
    csv: &Path,
    cfg: &MinerConfig,
) -> Result<SystemScore, TemplateError> {
    let raw = std::fs::read(log).map_err(io_err(log))?;
    let raw = String::from_utf8_lossy(&raw);
    let csv_bytes = std::fs::read(csv).map_err(io_err(csv))?;
    let csv_text = String::from_utf8_lossy(&csv_bytes);
    let bad = |reason: String| TemplateError::Csv {
        path: csv.display().to_string(),
        reason,
    };
    let rows = parse_csv(&csv_text).map_err(bad)?;
    let Some((header, rows)) = rows.split_first() else {
        return Err(bad("empty file".into()));
    };
    let col = |name: &str| header.iter().position(|h| h.trim() == name);
    let (Some(c_line), Some(c_content), Some(c_event), Some(c_tpl)) = (
        col("LineId"),
        col("Content"),
        col("EventId"),
        col("EventTemplate"),
    ) else {
        return Err(bad(
            "expected columns LineId, Content, EventId, EventTemplate".into(),
        ));
    };
    let mut rows: Vec<&Vec<String>> = rows
        .iter()
        .filter(|r| r.len() > c_tpl.max(c_content).max(c_event))
        .collect();
    rows.sort_by_key(|r| r[c_line].trim().parse::<usize>().unwrap_or(usize::MAX));
    let format = known_format(system).map(LogFormat::parse).transpose()?;
    let lines: Vec<&str> = raw.lines().collect();
    let mut contents: Vec<&str> = Vec::with_capacity(rows.len());
    let mut fallback = 0usize;
    for r in &rows {
        let id = r[c_line].trim().parse::<usize>().unwrap_or(0);
        let from_log = id
            .checked_sub(1)
            .and_then(|i| lines.get(i))
            .and_then(|l| format.as_ref().and_then(|f| f.content(l)));
        match from_log {
            Some(c) => contents.push(c),
            None => {
                fallback += 1;
                contents.push(r[c_content].as_str());
            }
        }
    }
    let mut miner = TemplateMiner::new(MinerConfig {
        extract_params: false,
        ..cfg.clone()
    });
    let t0 = Instant::now();
    let ids: Vec<TemplateId> = contents.iter().map(|c| miner.mine_id(c)).collect();
    let secs = t0.elapsed().as_secs_f64().max(1e-9);
    let truth_ids: Vec<&str> = rows.iter().map(|r| r[c_event].as_str()).collect();
    let truth_tpl: Vec<&str> = rows.iter().map(|r| r[c_tpl].as_str()).collect();
    let mut cache: HashMap<TemplateId, String> = HashMap::new();
    for id in &ids {
        cache
            .entry(*id)
            .or_insert_with(|| miner.template(*id).unwrap_or_default());
    }
    let pred_tpl: Vec<&str> = ids
        .iter()
        .map(|id| cache.get(id).map_or("", String::as_str))
        .collect();
    let mut distinct_truth: Vec<&str> = truth_ids.clone();
    distinct_truth.sort_unstable();
    distinct_truth.dedup();
    Ok(SystemScore {
        system: system.to_string(),
        lines: ids.len(),
        ga: grouping_accuracy(&truth_ids, &ids),
        pa: parsing_accuracy(&truth_tpl, &pred_tpl),
        lines_per_sec: ids.len() as f64 / secs,
        fallback_lines: fallback,
        templates_found: miner.len(),
        templates_truth: distinct_truth.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const README_FORMATS: [(&str, &str, &str); 8] = [
        (
            "HDFS",
            "081109 203615 148 INFO dfs.DataNode$PacketResponder: PacketResponder 1 for block blk_1 terminating",
            "PacketResponder 1 for block blk_1 terminating",
        ),
        (
            "Hadoop",
            "2015-10-18 18:01:47,978 INFO [main] org.apache.App: Created MRAppMaster for x",
            "Created MRAppMaster for x",
        ),
        (
            "Spark",
            "17/06/09 20:10:40 INFO spark.SecurityManager: Changing view acls to: yarn,curi",
            "Changing view acls to: yarn,curi",
        ),
        (
            "Zookeeper",
            "2015-07-29 17:41:44,747 - INFO  [QuorumPeer[myid=1]/0:0:0:0:0:0:0:0:2181:FastLeaderElection@774] - Notification time out: 3200",
            "Notification time out: 3200",
        ),
        (
            "BGL",
            "- 1117838570 2005.06.03 R02-M1-N0-C:J12-U11 2005-06-03-15.42.50.675872 R02-M1-N0-C:J12-U11 RAS KERNEL INFO instruction cache parity error corrected",
            "instruction cache parity error corrected",
        ),
        (
            "Apache",
            "[Sun Dec 04 04:47:44 2005] [notice] workerEnv.init() ok /etc/httpd/conf/workers2.properties",
            "workerEnv.init() ok /etc/httpd/conf/workers2.properties",
        ),
        (
            "OpenSSH",
            "Dec 10 06:55:46 LabSZ sshd[24200]: Invalid user webmaster from 173.234.31.186",
            "Invalid user webmaster from 173.234.31.186",
        ),
        (
            "Thunderbird",
            "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 crond(pam_unix)[2915]: session closed for user root",
            "session closed for user root",
        ),
    ];

    #[test]
    fn every_readme_format_parses_and_extracts_content() {
        for (sys, line, content) in README_FORMATS {
            let f = LogFormat::parse(known_format(sys).unwrap_or_default())
                .unwrap_or_else(|e| panic!("{sys}: {e}"));
            assert_eq!(f.content(line), Some(content), "{sys}");
            assert!(
                f.split(line)
                    .is_some_and(|v| v.last().map(|x| x.0) == Some("Content"))
            );
        }
        let t = LogFormat::parse(known_format("Thunderbird").unwrap_or_default()).expect("tb");
        let l = "- 1131566461 2005.11.09 dn228 Nov 9 12:01:01 dn228/dn228 kernel: hello there";
        assert_eq!(t.content(l), Some("hello there"));
        for s in [
            "HPC",
            "Linux",
            "Android",
            "HealthApp",
            "Windows",
            "Mac",
            "Proxifier",
            "OpenStack",
        ] {
            assert!(
                LogFormat::parse(known_format(s).unwrap_or_default()).is_ok(),
                "{s}"
            );
        }
    }

    #[test]
    fn non_matching_line_and_bad_formats() {
        let f = LogFormat::parse(known_format("Apache").unwrap_or_default()).expect("apache");
        assert_eq!(f.content("no brackets here"), None);
        assert!(f.split("").is_none());
        assert!(LogFormat::parse("<Date <Content>").is_err());
        assert!(LogFormat::parse("<Da te> <Content>").is_err());
        assert!(LogFormat::parse("<A> <A>").is_err());
        assert!(LogFormat::parse("no fields").is_err());
        assert!(LogFormat::parse("<A> ( <Content>").is_err());
    }

    #[test]
    fn ga_and_pa_by_hand() {
        let t = ["A", "A", "B", "C"];
        let ids = |v: &[u32]| v.iter().map(|&i| TemplateId(i)).collect::<Vec<_>>();
        assert_eq!(grouping_accuracy(&t, &ids(&[1, 1, 2, 3])), 1.0);
        // B and C merged: only A's two lines are right.
        assert_eq!(grouping_accuracy(&t, &ids(&[1, 1, 2, 2])), 0.5);
        // A split: A's lines wrong.
        assert_eq!(grouping_accuracy(&t, &ids(&[1, 4, 2, 3])), 0.5);
        assert_eq!(grouping_accuracy(&[], &[]), 0.0);
        assert_eq!(parsing_accuracy(&["a <*>", "b"], &["a  <*>", "c"]), 0.5);
    }
}
