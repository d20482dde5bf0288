//! Writes a [`LinearModel`] in free MPS format, so another solver (Python
//! `highspy`, `scipy.optimize.milp`, CBC, ...) can cross-check kplan's result.
//!
//! good_lp has no model writer; this writes the same [`LinearModel`] that
//! `solve.rs` hands to HiGHS. Conventions, as HiGHS and CPLEX read them:
//! integer columns sit between `MARKER INTORG` / `MARKER INTEND` lines and always
//! carry explicit bounds (some readers take an unbounded integer column for a
//! binary); a ranged row is an `L` row with a `RANGES` entry; the objective
//! constant is written as the negated right-hand side of the objective row.

use std::fmt::Write as _;

use super::model::{LinearModel, ModelConstraint, ModelVariable};

const OBJECTIVE_ROW: &str = "OBJ";

/// The model in free MPS format.
pub fn write_mps(model: &LinearModel) -> String {
    let mut out = String::new();
    let name = sanitize(&model.name);
    let _ = writeln!(out, "NAME {name}");
    let _ = writeln!(out, "OBJSENSE");
    let _ = writeln!(out, "    MIN");
    let _ = writeln!(out, "ROWS");
    let _ = writeln!(out, " N  {OBJECTIVE_ROW}");
    let row_names: Vec<String> = model.constraints.iter().enumerate().map(|(i, c)| row_name(i, c)).collect();
    let mut kinds = Vec::with_capacity(model.constraints.len());
    for (row, name) in model.constraints.iter().zip(&row_names) {
        let kind = row_kind(row);
        kinds.push(kind);
        let letter = match kind {
            RowKind::Equal => "E",
            RowKind::Less | RowKind::Ranged => "L",
            RowKind::Greater => "G",
            RowKind::Free => "N",
        };
        let _ = writeln!(out, " {letter}  {name}");
    }

    // Column-wise coefficients.
    let mut columns: Vec<Vec<(usize, f64)>> = vec![Vec::new(); model.variables.len()];
    for (i, row) in model.constraints.iter().enumerate() {
        for &(j, a) in &row.terms {
            columns[j].push((i, a));
        }
    }
    let column_names: Vec<String> = model.variables.iter().enumerate().map(|(j, v)| column_name(j, v)).collect();

    let _ = writeln!(out, "COLUMNS");
    let mut in_integer_section = false;
    let mut marker = 0;
    for (j, variable) in model.variables.iter().enumerate() {
        if variable.integer != in_integer_section {
            let kind = if variable.integer { "INTORG" } else { "INTEND" };
            let _ = writeln!(out, "    MARKER{marker}  'MARKER'  '{kind}'");
            marker += 1;
            in_integer_section = variable.integer;
        }
        let name = &column_names[j];
        let mut wrote = false;
        if variable.objective != 0.0 {
            let _ = writeln!(out, "    {name}  {OBJECTIVE_ROW}  {}", number(variable.objective));
            wrote = true;
        }
        for &(i, a) in &columns[j] {
            let _ = writeln!(out, "    {name}  {}  {}", row_names[i], number(a));
            wrote = true;
        }
        if !wrote {
            // Keep the column in the model even when it appears nowhere.
            let _ = writeln!(out, "    {name}  {OBJECTIVE_ROW}  0");
        }
    }
    if in_integer_section {
        let _ = writeln!(out, "    MARKER{marker}  'MARKER'  'INTEND'");
    }

    let _ = writeln!(out, "RHS");
    if model.objective_offset != 0.0 {
        let _ = writeln!(out, "    RHS  {OBJECTIVE_ROW}  {}", number(-model.objective_offset));
    }
    for ((row, kind), name) in model.constraints.iter().zip(&kinds).zip(&row_names) {
        let rhs = match kind {
            RowKind::Equal | RowKind::Less | RowKind::Ranged => row.upper,
            RowKind::Greater => row.lower,
            RowKind::Free => continue,
        };
        if rhs != 0.0 {
            let _ = writeln!(out, "    RHS  {name}  {}", number(rhs));
        }
    }

    if kinds.contains(&RowKind::Ranged) {
        let _ = writeln!(out, "RANGES");
        for ((row, kind), name) in model.constraints.iter().zip(&kinds).zip(&row_names) {
            if *kind == RowKind::Ranged {
                let _ = writeln!(out, "    RNG  {name}  {}", number(row.upper - row.lower));
            }
        }
    }

    let _ = writeln!(out, "BOUNDS");
    for (variable, name) in model.variables.iter().zip(&column_names) {
        write_bounds(&mut out, variable, name);
    }
    let _ = writeln!(out, "ENDATA");
    out
}

fn write_bounds(out: &mut String, variable: &ModelVariable, name: &str) {
    let (lower, upper) = (variable.lower, variable.upper);
    if lower == f64::NEG_INFINITY && upper == f64::INFINITY {
        let _ = writeln!(out, " FR BND  {name}");
        return;
    }
    if lower == upper {
        let _ = writeln!(out, " FX BND  {name}  {}", number(lower));
        return;
    }
    if lower == f64::NEG_INFINITY {
        let _ = writeln!(out, " MI BND  {name}");
    } else if lower != 0.0 || variable.integer {
        let _ = writeln!(out, " LO BND  {name}  {}", number(lower));
    }
    if upper != f64::INFINITY {
        let _ = writeln!(out, " UP BND  {name}  {}", number(upper));
    } else if variable.integer {
        let _ = writeln!(out, " PL BND  {name}");
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RowKind {
    Equal,
    Less,
    Greater,
    Ranged,
    Free,
}

fn row_kind(row: &ModelConstraint) -> RowKind {
    match (row.lower.is_finite(), row.upper.is_finite()) {
        (true, true) if row.lower == row.upper => RowKind::Equal,
        (true, true) => RowKind::Ranged,
        (false, true) => RowKind::Less,
        (true, false) => RowKind::Greater,
        (false, false) => RowKind::Free,
    }
}

fn row_name(index: usize, row: &ModelConstraint) -> String {
    let name = sanitize(&row.name);
    if name.is_empty() { format!("R{index}") } else { name }
}

fn column_name(index: usize, variable: &ModelVariable) -> String {
    let name = sanitize(&variable.name);
    if name.is_empty() { format!("C{index}") } else { name }
}

/// Names are written as they are; anything but ASCII letters, digits and `_-.[]`
/// becomes `_` so a name is one free-MPS token.
fn sanitize(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || "_-.[]".contains(c) { c } else { '_' }).collect()
}

/// Shortest representation that reads back to the same `f64`.
fn number(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e15 { format!("{}", x as i64) } else { format!("{x:?}") }
}

/// Reads free MPS as [`write_mps`] writes it (the subset used here). For tests
/// and for `kplan` tooling that wants to look at an exported model again.
pub fn parse_mps(text: &str) -> Result<LinearModel, String> {
    #[derive(PartialEq)]
    enum Section {
        None,
        Rows,
        Columns,
        Rhs,
        Ranges,
        Bounds,
        Objsense,
    }
    let mut model = LinearModel::default();
    let mut section = Section::None;
    let mut row_index = std::collections::HashMap::new();
    let mut row_kinds: Vec<char> = Vec::new();
    let mut column_index = std::collections::HashMap::new();
    let mut integer = false;
    let mut objective_row = String::new();
    let mut ranges: Vec<Option<f64>> = Vec::new();
    let mut rhs: Vec<f64> = Vec::new();
    let mut maximise = false;
    for (line_no, line) in text.lines().enumerate() {
        let line = line.trim_end();
        if line.is_empty() || line.starts_with('*') {
            continue;
        }
        let tokens: Vec<&str> = line.split_whitespace().collect();
        let error = |what: &str| format!("line {}: {what}: {line:?}", line_no + 1);
        if !line.starts_with(' ') {
            section = match tokens[0] {
                "NAME" => {
                    model.name = tokens.get(1).unwrap_or(&"").to_string();
                    Section::None
                }
                "OBJSENSE" => Section::Objsense,
                "ROWS" => Section::Rows,
                "COLUMNS" => Section::Columns,
                "RHS" => Section::Rhs,
                "RANGES" => Section::Ranges,
                "BOUNDS" => Section::Bounds,
                "ENDATA" => break,
                _ => return Err(error("unknown section")),
            };
            continue;
        }
        let parse = |s: &str| s.parse::<f64>().map_err(|_| error("bad number"));
        match section {
            Section::Objsense => maximise = tokens[0].starts_with("MAX"),
            Section::Rows => {
                let [kind, name] = tokens[..] else { return Err(error("expected a row kind and a name")) };
                if kind == "N" && objective_row.is_empty() {
                    objective_row = name.to_string();
                    continue;
                }
                let (lower, upper) = match kind {
                    "E" => (0.0, 0.0),
                    "L" => (f64::NEG_INFINITY, 0.0),
                    "G" => (0.0, f64::INFINITY),
                    "N" => (f64::NEG_INFINITY, f64::INFINITY),
                    _ => return Err(error("unknown row kind")),
                };
                row_index.insert(name.to_string(), model.constraints.len());
                row_kinds.push(kind.chars().next().unwrap_or('N'));
                ranges.push(None);
                rhs.push(0.0);
                model.constraints.push(ModelConstraint { name: name.to_string(), terms: Vec::new(), lower, upper });
            }
            Section::Columns => {
                if tokens.get(1) == Some(&"'MARKER'") {
                    integer = tokens.get(2) == Some(&"'INTORG'");
                    continue;
                }
                let name = tokens[0];
                let j = *column_index.entry(name.to_string()).or_insert_with(|| {
                    model.variables.push(ModelVariable {
                        name: name.to_string(),
                        lower: 0.0,
                        upper: f64::INFINITY,
                        integer,
                        objective: 0.0,
                    });
                    model.variables.len() - 1
                });
                for pair in tokens[1..].chunks(2) {
                    let [row, value] = pair else { return Err(error("odd entry")) };
                    let value = parse(value)?;
                    if *row == objective_row {
                        model.variables[j].objective += value;
                    } else {
                        let i = *row_index.get(*row).ok_or_else(|| error("unknown row"))?;
                        model.constraints[i].terms.push((j, value));
                    }
                }
            }
            Section::Rhs => {
                for pair in tokens[1..].chunks(2) {
                    let [row, value] = pair else { return Err(error("odd entry")) };
                    let value = parse(value)?;
                    if *row == objective_row {
                        model.objective_offset = -value;
                    } else {
                        let i = *row_index.get(*row).ok_or_else(|| error("unknown row"))?;
                        rhs[i] = value;
                    }
                }
            }
            Section::Ranges => {
                for pair in tokens[1..].chunks(2) {
                    let [row, value] = pair else { return Err(error("odd entry")) };
                    let i = *row_index.get(*row).ok_or_else(|| error("unknown row"))?;
                    ranges[i] = Some(parse(value)?);
                }
            }
            Section::Bounds => {
                let kind = tokens[0];
                let name = tokens.get(2).ok_or_else(|| error("missing column"))?;
                let j = *column_index.get(*name).ok_or_else(|| error("unknown column"))?;
                let value = tokens.get(3).map(|v| parse(v)).transpose()?;
                let variable = &mut model.variables[j];
                match (kind, value) {
                    ("UP", Some(v)) => variable.upper = v,
                    ("LO", Some(v)) => variable.lower = v,
                    ("FX", Some(v)) => {
                        variable.lower = v;
                        variable.upper = v;
                    }
                    ("FR", _) => {
                        variable.lower = f64::NEG_INFINITY;
                        variable.upper = f64::INFINITY;
                    }
                    ("MI", _) => variable.lower = f64::NEG_INFINITY,
                    ("PL", _) => variable.upper = f64::INFINITY,
                    ("BV", _) => {
                        variable.lower = 0.0;
                        variable.upper = 1.0;
                        variable.integer = true;
                    }
                    _ => return Err(error("unknown bound")),
                }
            }
            Section::None => return Err(error("data outside a section")),
        }
    }
    for (i, row) in model.constraints.iter_mut().enumerate() {
        let b = rhs[i];
        match (row_kinds[i], ranges[i]) {
            ('E', None) => (row.lower, row.upper) = (b, b),
            ('E', Some(r)) if r >= 0.0 => (row.lower, row.upper) = (b, b + r),
            ('E', Some(r)) => (row.lower, row.upper) = (b + r, b),
            ('L', None) => row.upper = b,
            ('L', Some(r)) => (row.lower, row.upper) = (b - r.abs(), b),
            ('G', None) => row.lower = b,
            ('G', Some(r)) => (row.lower, row.upper) = (b, b + r.abs()),
            _ => {}
        }
        row.terms.sort_by_key(|&(j, _)| j);
    }
    if maximise {
        for variable in &mut model.variables {
            variable.objective = -variable.objective;
        }
        model.objective_offset = -model.objective_offset;
    }
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_model() -> LinearModel {
        let mut model = LinearModel::new("small test");
        let x = model.add_variable("x", 0.0, 7.0, true, 3.0);
        let y = model.add_binary("y", -2.5);
        let z = model.add_variable("z", -1.0, f64::INFINITY, false, 0.125);
        let free = model.add_variable("free", f64::NEG_INFINITY, f64::INFINITY, false, 0.0);
        let fixed = model.add_variable("fixed", 2.0, 2.0, true, 1.0);
        model.add_le("cap", vec![(x, 2.0), (y, 1.5)], 9.0);
        model.add_ge("cover", vec![(x, 1.0), (z, 1.0)], 1.0);
        model.add_eq("tie", vec![(y, 1.0), (free, -1.0)], 0.0);
        model.add_constraint("range", vec![(z, 1.0), (fixed, 1.0)], 2.0, 5.5);
        model.objective_offset = 42.0;
        model
    }

    #[test]
    fn a_small_model_round_trips() {
        let model = small_model();
        let text = write_mps(&model);
        assert!(text.contains("'INTORG'") && text.contains("'INTEND'"), "{text}");
        let parsed = parse_mps(&text).unwrap();
        assert_eq!(parsed.name, "small_test");
        assert_eq!(parsed.variables, model.variables);
        assert_eq!(parsed.objective_offset, model.objective_offset);
        let mut expected = model.constraints.clone();
        for row in &mut expected {
            row.terms.sort_by_key(|&(j, _)| j);
        }
        assert_eq!(parsed.constraints, expected);
        // Same objective at the same point.
        let point = [3.0, 1.0, 0.5, 1.0, 2.0];
        assert_eq!(parsed.objective_value(&point), model.objective_value(&point));
    }

    #[test]
    fn numbers_read_back_exactly() {
        for x in [0.1, 1.0 / 3.0, 1e-12, 123456789.0, -0.5, 1e20] {
            assert_eq!(number(x).parse::<f64>().unwrap(), x);
        }
    }
}
