//! Reading a folder in NAB's layout.

use super::{NabError, Profile};
use medic_detect::series::time::parse_timestamp_ms;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// One series with its anomaly windows as inclusive row-index ranges.
#[derive(Clone, Debug)]
pub struct DataFile {
    /// `"<category>/<series>.csv"`, as in the label files.
    pub name: String,
    pub category: String,
    /// Milliseconds since the Unix epoch.
    pub timestamps: Vec<i64>,
    pub values: Vec<f64>,
    pub windows: Vec<(usize, usize)>,
}

#[derive(Clone, Debug)]
pub struct Corpus {
    pub root: PathBuf,
    pub files: Vec<DataFile>,
    pub profiles: Vec<Profile>,
}

fn read(path: &Path) -> Result<String, NabError> {
    std::fs::read_to_string(path).map_err(|source| NabError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn json(path: &Path) -> Result<serde_json::Value, NabError> {
    serde_json::from_str(&read(path)?).map_err(|source| NabError::Json {
        path: path.to_path_buf(),
        source,
    })
}

fn format_err(path: &Path, message: impl Into<String>) -> NabError {
    NabError::Format {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Profiles from `profiles.json` (`{name: {"CostMatrix": {tpWeight, fpWeight, fnWeight}}}`).
fn profiles(path: &Path) -> Result<Vec<Profile>, NabError> {
    if !path.exists() {
        return Ok(Profile::nab_defaults());
    }
    let v = json(path)?;
    let obj = v
        .as_object()
        .ok_or_else(|| format_err(path, "expected an object of profiles"))?;
    let mut out = Vec::new();
    for (name, p) in obj {
        let w = |k: &str| {
            p.get("CostMatrix")
                .and_then(|c| c.get(k))
                .and_then(serde_json::Value::as_f64)
                .filter(|x| x.is_finite())
                .ok_or_else(|| {
                    format_err(
                        path,
                        format!("profile {name}: CostMatrix.{k} must be a number"),
                    )
                })
        };
        out.push(Profile {
            name: name.clone(),
            tp_weight: w("tpWeight")?,
            fp_weight: w("fpWeight")?,
            fn_weight: w("fnWeight")?,
        });
    }
    // NAB's own order, then any others by name.
    let rank = |n: &str| match n {
        "standard" => 0,
        "reward_low_FP_rate" => 1,
        "reward_low_FN_rate" => 2,
        _ => 3,
    };
    out.sort_by(|a, b| (rank(&a.name), &a.name).cmp(&(rank(&b.name), &b.name)));
    Ok(out)
}

fn windows(path: &Path) -> Result<BTreeMap<String, Vec<(i64, i64)>>, NabError> {
    let v = json(path)?;
    let obj = v
        .as_object()
        .ok_or_else(|| format_err(path, "expected an object of series → windows"))?;
    let mut out = BTreeMap::new();
    for (name, ws) in obj {
        let mut list = Vec::new();
        for w in ws.as_array().into_iter().flatten() {
            let ts = |i: usize| {
                w.get(i)
                    .and_then(serde_json::Value::as_str)
                    .and_then(parse_timestamp_ms)
                    .ok_or_else(|| {
                        format_err(path, format!("{name}: window bounds must be timestamps"))
                    })
            };
            list.push((ts(0)?, ts(1)?));
        }
        list.sort_unstable();
        out.insert(name.clone(), list);
    }
    Ok(out)
}

fn series(path: &Path) -> Result<(Vec<i64>, Vec<f64>), NabError> {
    let text = read(path)?;
    let (mut ts, mut vs) = (Vec::new(), Vec::new());
    for (i, line) in text.lines().enumerate().skip(1) {
        if line.trim().is_empty() {
            continue;
        }
        let (t, v) = line
            .split_once(',')
            .ok_or_else(|| format_err(path, format!("line {}: expected timestamp,value", i + 1)))?;
        let t = parse_timestamp_ms(t)
            .ok_or_else(|| format_err(path, format!("line {}: bad timestamp {t:?}", i + 1)))?;
        let v: f64 = v
            .trim()
            .parse()
            .map_err(|_| format_err(path, format!("line {}: bad value {v:?}", i + 1)))?;
        ts.push(t);
        vs.push(v);
    }
    Ok((ts, vs))
}

/// Load every `data/<category>/*.csv` under `root` with its windows.
pub fn load_corpus(root: &Path) -> Result<Corpus, NabError> {
    let profiles = profiles(&root.join("profiles.json"))?;
    let labels = windows(&root.join("labels").join("combined_windows.json"))?;
    let data = root.join("data");
    let mut names = Vec::new();
    let dir = |p: &Path| {
        std::fs::read_dir(p).map_err(|source| NabError::Io {
            path: p.to_path_buf(),
            source,
        })
    };
    for cat in dir(&data)? {
        let cat = cat.map_err(|source| NabError::Io {
            path: data.clone(),
            source,
        })?;
        if !cat.path().is_dir() {
            continue;
        }
        for f in dir(&cat.path())? {
            let f = f.map_err(|source| NabError::Io {
                path: cat.path(),
                source,
            })?;
            let p = f.path();
            if p.extension().is_some_and(|e| e == "csv") {
                names.push((
                    cat.file_name().to_string_lossy().into_owned(),
                    f.file_name().to_string_lossy().into_owned(),
                    p,
                ));
            }
        }
    }
    names.sort();
    if names.is_empty() {
        return Err(NabError::Empty { path: data });
    }
    let mut files = Vec::new();
    for (cat, file, path) in names {
        let name = format!("{cat}/{file}");
        let (timestamps, values) = series(&path)?;
        let mut idx = Vec::new();
        for &(s, e) in labels.get(&name).into_iter().flatten() {
            // Window bounds are row timestamps in NAB; the first row at or after the start
            // and the last at or before the end also cover hand-made label files.
            let a = timestamps.partition_point(|&t| t < s);
            let b = timestamps.partition_point(|&t| t <= e);
            if a < b {
                idx.push((a, b - 1));
            }
        }
        files.push(DataFile {
            name,
            category: cat,
            timestamps,
            values,
            windows: idx,
        });
    }
    Ok(Corpus {
        root: root.to_path_buf(),
        files,
        profiles,
    })
}
