//! The data a triggered run receives: new files found by a files trigger (one file as it is,
//! several concatenated), or the recent labelled traffic of a served model as a CSV file with
//! the dataset's columns (alone, or after the dataset's own rows). Files written here go under
//! the data directory (`inputs/`), so a resumed run reads exactly what its first attempt read.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

use crate::serve::feedback::LabelledRow;

/// What a files trigger consumed: file path -> `size:modified` fingerprint.
pub type Seen = BTreeMap<String, String>;

/// Files matching a pattern that are new or changed since `seen`, with their rows.
#[derive(Debug, Default, PartialEq)]
pub struct NewFiles {
    pub files: Vec<PathBuf>,
    /// Data rows in them (lines after each header).
    pub rows: u64,
    /// The fingerprint of each, to record once a run takes them.
    pub fingerprints: Vec<(String, String)>,
}

fn fingerprint(path: &Path) -> std::io::Result<String> {
    let meta = std::fs::metadata(path)?;
    let modified = meta
        .modified()?
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    Ok(format!("{}:{modified}", meta.len()))
}

/// Data rows of a CSV file: its lines after the header, not counting empty ones.
pub fn count_rows(path: &Path) -> std::io::Result<u64> {
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut rows = 0u64;
    for line in reader.split(b'\n').skip(1) {
        if !line?.iter().all(u8::is_ascii_whitespace) {
            rows += 1;
        }
    }
    Ok(rows)
}

/// The files matching `pattern` not in `seen` with their current fingerprint, in name order.
/// Hidden files (a name starting with `.`) are left out: write a file under such a name and
/// rename it when it is complete, so a half-written file is never taken.
pub fn scan(pattern: &Path, seen: &Seen) -> Result<NewFiles, String> {
    let text = pattern.to_string_lossy();
    let paths = glob::glob(&text).map_err(|err| format!("pattern `{text}`: {err}"))?;
    let mut found = NewFiles::default();
    let mut paths: Vec<PathBuf> = paths.filter_map(Result::ok).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || !path.is_file() {
            continue;
        }
        // A file that vanishes or cannot be read between listing and reading is taken later.
        let Ok(print) = fingerprint(&path) else {
            continue;
        };
        let key = path.display().to_string();
        if seen.get(&key) == Some(&print) {
            continue;
        }
        let Ok(rows) = count_rows(&path) else {
            continue;
        };
        found.rows += rows;
        found.files.push(path);
        found.fingerprints.push((key, print));
    }
    Ok(found)
}

/// One file holding the rows of `files`: the file itself when there is one, else their
/// concatenation (one header, which every file must share) written to `into`.
pub fn combine(files: &[PathBuf], into: &Path) -> Result<PathBuf, String> {
    match files {
        [] => Err("no files to combine".into()),
        [one] => Ok(one.clone()),
        _ => {
            let mut header: Option<String> = None;
            let mut out = Vec::new();
            for file in files {
                let text = std::fs::read_to_string(file)
                    .map_err(|err| format!("{}: {err}", file.display()))?;
                let mut lines = text.lines();
                let first = lines.next().unwrap_or_default().trim_end().to_string();
                match &header {
                    None => {
                        out.extend_from_slice(first.as_bytes());
                        out.push(b'\n');
                        header = Some(first);
                    }
                    Some(expected) if *expected != first => {
                        return Err(format!(
                            "{} has other columns than {}: `{first}` vs `{expected}`",
                            file.display(),
                            files[0].display()
                        ));
                    }
                    Some(_) => {}
                }
                for line in lines.filter(|l| !l.trim().is_empty()) {
                    out.extend_from_slice(line.as_bytes());
                    out.push(b'\n');
                }
            }
            crate::files::write_atomic(into, &out)?;
            Ok(into.to_path_buf())
        }
    }
}

/// Writes labelled rows (`features` cells, as CSV text, and the truth) as a CSV file with the columns of
/// `dataset` (a column that is neither a feature nor the target is left empty); with `append`,
/// after the dataset's own rows.
pub fn write_labelled(
    dataset: &Path,
    append: bool,
    features: &[String],
    target: &str,
    rows: &[LabelledRow],
    into: &Path,
) -> Result<PathBuf, String> {
    let original = std::fs::read_to_string(dataset)
        .map_err(|err| format!("the dataset {}: {err}", dataset.display()))?;
    let mut lines = original.lines();
    let header_line = lines.next().unwrap_or_default().trim_end().to_string();
    let header: Vec<String> = csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(header_line.as_bytes())
        .records()
        .next()
        .and_then(Result::ok)
        .map(|r| r.iter().map(str::to_string).collect())
        .unwrap_or_default();
    if !header.iter().any(|c| c == target) {
        return Err(format!(
            "the dataset {} has no column `{target}` (the model's target)",
            dataset.display()
        ));
    }
    let mut out = Vec::with_capacity(original.len());
    out.extend_from_slice(header_line.as_bytes());
    out.push(b'\n');
    if append {
        for line in lines.filter(|l| !l.trim().is_empty()) {
            out.extend_from_slice(line.as_bytes());
            out.push(b'\n');
        }
    }
    let position: Vec<Option<usize>> = header
        .iter()
        .map(|column| features.iter().position(|f| f == column))
        .collect();
    let mut writer = csv::Writer::from_writer(out);
    for LabelledRow {
        cells: values,
        truth,
        ..
    } in rows
    {
        let record: Vec<String> = header
            .iter()
            .zip(&position)
            .map(|(column, at)| match at {
                Some(index) => values.get(*index).cloned().unwrap_or_default(),
                None if column == target => match truth {
                    serde_json::Value::String(text) => text.clone(),
                    other => other.to_string(),
                },
                None => String::new(),
            })
            .collect();
        writer
            .write_record(&record)
            .map_err(|err| format!("writing {}: {err}", into.display()))?;
    }
    let bytes = writer
        .into_inner()
        .map_err(|err| format!("writing {}: {err}", into.display()))?;
    crate::files::write_atomic(into, &bytes)?;
    Ok(into.to_path_buf())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn new_and_changed_files_are_found_once_and_combined() {
        let dir = tempfile::tempdir().unwrap();
        let pattern = dir.path().join("*.csv");
        std::fs::write(dir.path().join("a.csv"), "x,y\n1,2\n3,4\n").unwrap();
        std::fs::write(dir.path().join(".b.csv"), "x,y\n5,6\n").unwrap();
        let found = scan(&pattern, &Seen::new()).unwrap();
        assert_eq!(found.files, vec![dir.path().join("a.csv")]);
        assert_eq!(found.rows, 2);
        let seen: Seen = found.fingerprints.into_iter().collect();
        assert_eq!(scan(&pattern, &seen).unwrap(), NewFiles::default());
        std::fs::rename(dir.path().join(".b.csv"), dir.path().join("b.csv")).unwrap();
        let found = scan(&pattern, &seen).unwrap();
        assert_eq!(found.files, vec![dir.path().join("b.csv")]);
        let all = vec![dir.path().join("a.csv"), dir.path().join("b.csv")];
        let combined = combine(&all, &dir.path().join("out/both.csv")).unwrap();
        assert_eq!(
            std::fs::read_to_string(combined).unwrap(),
            "x,y\n1,2\n3,4\n5,6\n"
        );
        std::fs::write(dir.path().join("c.csv"), "x,z\n1,2\n").unwrap();
        let err = combine(
            &[dir.path().join("a.csv"), dir.path().join("c.csv")],
            &dir.path().join("bad.csv"),
        )
        .unwrap_err();
        assert!(err.contains("other columns"), "{err}");
    }

    #[test]
    fn labelled_rows_take_the_datasets_columns() {
        let dir = tempfile::tempdir().unwrap();
        let dataset = dir.path().join("data.csv");
        std::fs::write(&dataset, "id,b,a,label\n7,1.5,2.5,yes\n").unwrap();
        let rows = vec![LabelledRow {
            cells: vec!["10".to_string(), "20".to_string()],
            truth: serde_json::json!("no"),
            trusted: true,
        }];
        let features = vec!["a".to_string(), "b".to_string()];
        let replaced = write_labelled(
            &dataset,
            false,
            &features,
            "label",
            &rows,
            &dir.path().join("r.csv"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(replaced).unwrap(),
            "id,b,a,label\n,20,10,no\n"
        );
        let appended = write_labelled(
            &dataset,
            true,
            &features,
            "label",
            &rows,
            &dir.path().join("p.csv"),
        )
        .unwrap();
        assert_eq!(
            std::fs::read_to_string(appended).unwrap(),
            "id,b,a,label\n7,1.5,2.5,yes\n,20,10,no\n"
        );
        let err = write_labelled(
            &dataset,
            false,
            &features,
            "nope",
            &rows,
            &dir.path().join("x"),
        )
        .unwrap_err();
        assert!(err.contains("no column `nope`"), "{err}");
    }
}
