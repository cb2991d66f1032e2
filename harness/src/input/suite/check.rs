//! From the file serde read to a checked [`Suite`]: every name resolved,
//! every number in range, every setting that does not apply refused, all
//! problems of the file at once.

use super::*;

pub(super) fn check(src: &Source, file: SuiteFile, errors: &mut Vec<Diagnostic>) -> Suite {
    let targets = check_meta(src, &file.suite, errors);
    check_not_empty(src, &file, errors);
    let base = src.path.parent().unwrap_or(Path::new(""));
    let datasets = check_datasets(src, &file.dataset, base, errors);
    let models = check_models(src, &file.model, &datasets, errors);
    let variants = check_variants(src, &file.variant, &models, &datasets, errors);
    let duts = check_duts(src, &file.dut, &models, base, errors);
    let runtimes = check_runtimes(src, &file.suite, &duts, errors);
    let meta = file.suite;
    Suite {
        path: PathBuf::new(),
        text: String::new(),
        name: meta.name.into_inner(),
        targets: if meta.targets.is_none() {
            vec!["host".into()]
        } else {
            targets
        },
        runtimes,
        warmup: meta.warmup.into_inner(),
        repetitions: meta.repetitions.into_inner(),
        timeout: meta.timeout.into_inner(),
        datasets,
        models,
        variants,
        duts,
    }
}

/// `[suite]`: its name, targets (each once) and run settings in range; the target names.
fn check_meta(src: &Source, meta: &SuiteMeta, errors: &mut Vec<Diagnostic>) -> Vec<String> {
    check_name(src, &meta.name, "suite name", errors);
    let mut targets: Vec<String> = Vec::new();
    for t in meta.targets.iter().flatten() {
        if check_name(src, t, "target", errors) && targets.contains(t.get_ref()) {
            errors.push(src.error(
                Some(t.span()),
                format!(
                    "target `{}` is listed twice: each job id must be unique",
                    t.get_ref()
                ),
            ));
        }
        targets.push(t.get_ref().clone());
    }
    if meta.targets.as_ref().is_some_and(Vec::is_empty) {
        errors.push(src.error(
            crate::input::diag::span_of(src.text, &["suite", "targets"]),
            "[suite] targets = [] names no target: list at least one, or leave the key out to run on the host",
        ));
    }
    check_range(
        src,
        &meta.repetitions,
        1..=MAX_INFERENCES,
        "repetitions",
        errors,
    );
    check_range(src, &meta.warmup, 0..=MAX_INFERENCES, "warmup", errors);
    check_range(
        src,
        &meta.timeout,
        1..=MAX_TIMEOUT_SECONDS,
        "timeout (seconds)",
        errors,
    );
    targets
}

/// `[suite] runtimes`: known names (built-in or a `[[dut]]`'s), each once,
/// every `[[dut]]` among them; default `["bench"]`.
fn check_runtimes(
    src: &Source,
    meta: &SuiteMeta,
    duts: &[DutRuntime],
    errors: &mut Vec<Diagnostic>,
) -> Vec<Runtime> {
    let Some(names) = &meta.runtimes else {
        if !duts.is_empty() {
            errors.push(src.error(
                None,
                format!("[[dut]] `{}` is not in [suite] runtimes: add it there, e.g. runtimes = [\"bench\", \"{}\"]", duts[0].name, duts[0].name),
            ));
        }
        return vec![Runtime::Bench];
    };
    let known: Vec<&str> = Runtime::NAMES
        .into_iter()
        .chain(duts.iter().map(|d| d.name.as_str()))
        .collect();
    let mut runtimes = Vec::new();
    for name in names {
        let runtime = Runtime::parse(name.get_ref()).or_else(|| {
            duts.iter()
                .position(|d| &d.name == name.get_ref())
                .map(Runtime::Dut)
        });
        match runtime {
            Some(r) if runtimes.contains(&r) => errors.push(src.error(
                Some(name.span()),
                format!(
                    "runtime `{}` is listed twice: each job id must be unique",
                    name.get_ref()
                ),
            )),
            Some(r) => runtimes.push(r),
            None => {
                let mut d = src.error(
                    Some(name.span()),
                    format!(
                        "unknown runtime `{}`; bench runs {}, or a [[dut]] the suite names",
                        name.get_ref(),
                        known.join(", ")
                    ),
                );
                d.help = did_you_mean(name.get_ref(), known.iter().copied());
                errors.push(d);
            }
        }
    }
    if names.is_empty() {
        errors.push(src.error(
            crate::input::diag::span_of(src.text, &["suite", "runtimes"]),
            "[suite] runtimes = [] names no runtime: list at least one, or leave the key out to run bench's kernels",
        ));
    }
    for (i, dut) in duts.iter().enumerate() {
        let shadowed = Runtime::parse(&dut.name).is_some();
        if !runtimes.contains(&Runtime::Dut(i)) && !names.is_empty() && !shadowed {
            errors.push(src.error(
                crate::input::diag::span_of(src.text, &["suite", "runtimes"]),
                format!(
                    "[[dut]] `{}` is not in [suite] runtimes: add it there to run it",
                    dut.name
                ),
            ));
        }
    }
    runtimes
}

/// `[[dut]]`: a name of its own, and an ELF that exists for every model
/// named (a per-model table names only the suite's models).
fn check_duts(
    src: &Source,
    specs: &[DutSpec],
    models: &[SuiteModel],
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Vec<DutRuntime> {
    let mut duts: Vec<DutRuntime> = Vec::new();
    for spec in specs {
        let name = spec.name.get_ref();
        let taken = Runtime::parse(name).is_some() || duts.iter().any(|d| &d.name == name);
        if check_name(src, &spec.name, "[[dut]] name", errors) && taken {
            errors.push(src.error(
                Some(spec.name.span()),
                format!("runtime `{name}` is already defined: a [[dut]] needs a name of its own"),
            ));
        }
        if let DutElf::PerModel(table) = spec.elf.get_ref() {
            for model in table
                .keys()
                .filter(|k| !models.iter().any(|m| &m.name == *k))
            {
                errors.push(src.error(
                    Some(spec.elf.span()),
                    format!("[[dut]] `{name}` names an ELF for model `{model}`, which the suite does not have"),
                ));
            }
        }
        let mut file = |path: &String| {
            let full = base.join(path);
            if !full.is_file() {
                errors.push(src.error(
                    Some(spec.elf.span()),
                    format!("[[dut]] `{name}`: no such firmware file {}", full.display()),
                ));
            }
            full
        };
        let elves = match spec.elf.get_ref() {
            DutElf::One(path) => vec![Some(file(path)); models.len()],
            DutElf::PerModel(table) => models
                .iter()
                .map(|m| table.get(&m.name).map(&mut file))
                .collect(),
        };
        duts.push(DutRuntime {
            name: name.clone(),
            elves,
        });
    }
    duts
}

/// The `[[model]]` and `[[variant]]` tables must not be empty.
fn check_not_empty(src: &Source, file: &SuiteFile, errors: &mut Vec<Diagnostic>) {
    if file.model.is_empty() {
        errors.push(src.error(
            None,
            "the suite has no [[model]]: add at least one, e.g. [[model]] zoo = \"ds-cnn\"",
        ));
    }
    if file.variant.is_empty() {
        errors.push(src.error(None, "the suite has no [[variant]]: add at least one, e.g. [[variant]] name = \"int8\" quant = { scheme = \"int8\" }"));
    }
}

/// `[[dataset]]`: each named once, with a usable limit, loaded.
fn check_datasets(
    src: &Source,
    specs: &[DatasetFileSpec],
    base: &Path,
    errors: &mut Vec<Diagnostic>,
) -> Vec<Dataset> {
    let mut datasets: Vec<Dataset> = Vec::new();
    for d in specs {
        if !check_name(src, &d.name, "dataset name", errors) {
            continue;
        }
        if let Some(limit) = d.limit.as_ref().filter(|l| *l.get_ref() == 0) {
            errors.push(src.error(
                Some(limit.span()),
                "limit = 0 keeps no sample: give at least 1, or leave the key out to use them all",
            ));
            continue;
        }
        if datasets.iter().any(|o| &o.name == d.name.get_ref()) {
            errors.push(src.error(
                Some(d.name.span()),
                format!("duplicate dataset name `{}`", d.name.get_ref()),
            ));
            continue;
        }
        let spec = DatasetSpec {
            name: d.name.get_ref().clone(),
            path: d.path.get_ref().clone(),
            labels: d.labels.clone(),
            label_column: d.label_column.clone(),
            limit: d.limit.as_ref().map(|l| *l.get_ref()),
            shuffle: d.shuffle,
        };
        match dataset::load(&spec, base) {
            Ok(data) => datasets.push(data),
            Err(e) => errors.push(src.error(Some(d.path.span()), e)),
        }
    }
    datasets
}

/// `[[model]]`: each loaded (zoo or file), named once, its dataset found.
fn check_models(
    src: &Source,
    specs: &[ModelSpec],
    datasets: &[Dataset],
    errors: &mut Vec<Diagnostic>,
) -> Vec<SuiteModel> {
    let mut models: Vec<SuiteModel> = Vec::new();
    for m in specs {
        let Some((graph, default_name, span)) = model_graph(src, m, errors) else {
            continue;
        };
        // A default name comes from a file name, so it is made usable; a given one must be.
        let (name, span) = m.name.as_ref().map_or(
            (crate::input::diag::usable_name(&default_name), span),
            |n| (n.get_ref().clone(), n.span()),
        );
        if m.name
            .as_ref()
            .is_some_and(|n| !check_name(src, n, "model name", errors))
        {
            continue;
        }
        if models.iter().any(|o| o.name == name) {
            errors.push(src.error(Some(span), format!("duplicate model name `{name}`")));
            continue;
        }
        let dataset = m
            .dataset
            .as_ref()
            .and_then(|d| find_dataset(src, datasets, d, &graph, errors));
        let tflite = m.source.as_ref().and_then(|s| s.get_ref().tflite.as_ref());
        models.push(SuiteModel {
            name,
            graph,
            seed: m.seed,
            dataset,
            tflite: tflite.map(|f| src.path.parent().unwrap_or(Path::new("")).join(f)),
        });
    }
    models
}

/// `[[variant]]`: each named once, expanded over the models it names.
fn check_variants(
    src: &Source,
    specs: &[VariantSpec],
    models: &[SuiteModel],
    datasets: &[Dataset],
    errors: &mut Vec<Diagnostic>,
) -> Vec<SuiteVariant> {
    let mut variants = Vec::new();
    let mut seen: Vec<&str> = Vec::new();
    for v in specs {
        if !check_name(src, &v.name, "variant name", errors) {
            continue;
        }
        if seen.contains(&v.name.get_ref().as_str()) {
            errors.push(src.error(
                Some(v.name.span()),
                format!("duplicate variant name `{}`", v.name.get_ref()),
            ));
        }
        seen.push(v.name.get_ref());
        let chosen: Vec<usize> = match &v.models {
            None => (0..models.len()).collect(),
            Some(names) => names
                .iter()
                .filter_map(|n| {
                    let found = models.iter().position(|m| &m.name == n.get_ref());
                    if found.is_none() {
                        let mut d = src.error(
                            Some(n.span()),
                            format!(
                                "variant `{}` names model `{}`, which the suite does not define",
                                v.name.get_ref(),
                                n.get_ref()
                            ),
                        );
                        d.help = did_you_mean(n.get_ref(), models.iter().map(|m| m.name.as_str()));
                        errors.push(d);
                    }
                    found
                })
                .collect(),
        };
        for m in chosen {
            if let Some(variant) = check_variant(src, v, m, &models[m], datasets, errors) {
                variants.push(variant);
            }
        }
    }
    variants
}

/// Checks that a number is in `range`; false (and an error naming `what`) if not.
fn check_range<T: PartialOrd + std::fmt::Display + Copy>(
    src: &Source,
    value: &Spanned<T>,
    range: std::ops::RangeInclusive<T>,
    what: &str,
    errors: &mut Vec<Diagnostic>,
) -> bool {
    if range.contains(value.get_ref()) {
        return true;
    }
    let span = (!value.span().is_empty()).then(|| value.span());
    errors.push(src.error(
        span,
        format!(
            "{what} = {} is outside {}..={}",
            value.get_ref(),
            range.start(),
            range.end()
        ),
    ));
    false
}

/// Checks a name against [`crate::input::diag::name_problem`]; false (and an error) if it is not usable.
fn check_name(
    src: &Source,
    name: &Spanned<String>,
    what: &str,
    errors: &mut Vec<Diagnostic>,
) -> bool {
    match crate::input::diag::name_problem(name.get_ref()) {
        Some(problem) => {
            errors.push(src.error(Some(name.span()), format!("{what}: {problem}")));
            false
        }
        None => true,
    }
}

/// The graph of a `[[model]]`, its default name and the span to blame.
fn model_graph(
    src: &Source,
    m: &ModelSpec,
    errors: &mut Vec<Diagnostic>,
) -> Option<(Graph, String, std::ops::Range<usize>)> {
    match (&m.zoo, &m.source) {
        (Some(_), None) if m.exit_heads.is_some() => {
            let span = m.exit_heads.as_ref().map(|h| h.span());
            errors.push(src.error(span, "`exit-heads` names outputs of an imported model; a zoo model's exits are attached by a variant's `exits = { at = [...] }`"));
            None
        }
        (Some(zoo), None) => {
            let Some(graph) = zoo::build(zoo.get_ref()) else {
                let mut d = src.error(
                    Some(zoo.span()),
                    format!(
                        "unknown zoo model `{}`; the zoo has {}",
                        zoo.get_ref(),
                        zoo::NAMES.join(", ")
                    ),
                );
                d.help = did_you_mean(zoo.get_ref(), zoo::NAMES);
                errors.push(d);
                return None;
            };
            Some((graph, zoo.get_ref().clone(), zoo.span()))
        }
        (None, Some(source)) => {
            let (file, format) = match (&source.get_ref().tflite, &source.get_ref().onnx) {
                (Some(file), None) => (file, import::Format::Tflite),
                (None, Some(file)) => (file, import::Format::Onnx),
                _ => {
                    errors.push(
                        src.error(Some(source.span()), "a model source needs exactly one of `tflite` or `onnx`, e.g. source = { onnx = \"model.onnx\" }"),
                    );
                    return None;
                }
            };
            let path = src.path.parent().unwrap_or(Path::new("")).join(file);
            let heads = m.exit_heads.as_ref().map(|h| h.get_ref().as_slice());
            match import::load_as(&path, format, heads) {
                Ok(graph) => Some((graph.clone(), graph.name, source.span())),
                Err(e) => {
                    errors.push(src.error(Some(source.span()), e.to_string()));
                    None
                }
            }
        }
        _ => {
            let span = m
                .zoo
                .as_ref()
                .map(|z| z.span())
                .or(m.name.as_ref().map(|n| n.span()));
            errors
                .push(src.error(span, "a [[model]] needs exactly one of `zoo` (a zoo architecture) or `source` (e.g. source = { tflite = \"model.tflite\" })"));
            None
        }
    }
}

/// The index of the dataset `name`, checked against the model's input size.
fn find_dataset(
    src: &Source,
    datasets: &[Dataset],
    name: &Spanned<String>,
    graph: &Graph,
    errors: &mut Vec<Diagnostic>,
) -> Option<usize> {
    let Some(i) = datasets.iter().position(|d| &d.name == name.get_ref()) else {
        let mut d = src.error(
            Some(name.span()),
            format!("no [[dataset]] named `{}`", name.get_ref()),
        );
        d.help = did_you_mean(name.get_ref(), datasets.iter().map(|d| d.name.as_str()));
        errors.push(d);
        return None;
    };
    let elements = graph.tensors[graph.input].shape.elements().unwrap_or(0);
    if let Err(e) = datasets[i].check_item(&graph.name, elements) {
        errors.push(src.error(Some(name.span()), e));
        return None;
    }
    Some(i)
}

/// Checks that `name` is a layer of `graph`, with a suggestion if not.
fn check_layer(
    src: &Source,
    graph: &Graph,
    name: &Spanned<String>,
    what: &str,
    errors: &mut Vec<Diagnostic>,
) -> bool {
    if graph.layer(name.get_ref()).is_some() {
        return true;
    }
    let mut d = src.error(
        Some(name.span()),
        format!(
            "{what}: model `{}` has no layer `{}`",
            graph.name,
            name.get_ref()
        ),
    );
    d.help = did_you_mean(name.get_ref(), graph.layers.iter().map(|l| l.name.as_str()));
    errors.push(d);
    false
}

fn fraction(
    src: &Source,
    value: &Option<Spanned<f32>>,
    key: &str,
    method: &Spanned<PruneMethod>,
    errors: &mut Vec<Diagnostic>,
) -> Option<f32> {
    let Some(v) = value else {
        errors.push(src.error(
            Some(method.span()),
            format!("this pruning method needs `{key}`, a fraction in [0, 1)"),
        ));
        return None;
    };
    let x = *v.get_ref();
    if !(0.0..1.0).contains(&x) {
        errors.push(src.error(
            Some(v.span()),
            format!("{key} = {x} is outside [0, 1): 1.0 would remove everything"),
        ));
        return None;
    }
    Some(x)
}

/// Each pruning method has its own keys: `ratio` for channels, `sparsity`
/// (and `sparse-kernels`) for magnitude, those and `block` for block; the
/// other methods' keys would be ignored.
fn check_prune_keys(src: &Source, prune: Option<&PruneSpec>, errors: &mut Vec<Diagnostic>) {
    let Some(p) = prune else { return };
    let (method, stray) = match p.method.get_ref() {
        PruneMethod::Channels
            if p.sparsity.is_some() || p.sparse_kernels.is_some() || p.block.is_some() =>
        {
            (
                "channels",
                "sparsity, block and sparse-kernels (the other methods' keys)",
            )
        }
        PruneMethod::Magnitude
            if p.ratio.is_some() || p.block.is_some() || p.objective.is_some() =>
        {
            (
                "magnitude",
                "ratio, objective or block (channel and block pruning's keys)",
            )
        }
        PruneMethod::Block if p.ratio.is_some() || p.objective.is_some() => {
            ("block", "ratio or objective (channel pruning's keys)")
        }
        _ => return,
    };
    errors.push(src.error(
        Some(p.method.span()),
        format!("method = \"{method}\" does not take {stray}: remove it, or change the method"),
    ));
}

/// Block pruning's `block = [output channels, inputs]`: two sizes of at
/// least one, not both one (that is magnitude pruning).
fn block_shape(src: &Source, p: &PruneSpec, errors: &mut Vec<Diagnostic>) -> Option<[usize; 2]> {
    let Some(block) = &p.block else {
        errors.push(src.error(
            Some(p.method.span()),
            "block pruning needs `block = [output channels, inputs]`, e.g. [1, 4]",
        ));
        return None;
    };
    match block.get_ref().as_slice() {
        &[rows, columns] if rows >= 1 && columns >= 1 && rows * columns > 1 => {
            Some([rows as usize, columns as usize])
        }
        &[1, 1] => {
            errors.push(src.error(
                Some(block.span()),
                "block = [1, 1] zeroes single weights: use method = \"magnitude\"",
            ));
            None
        }
        other => {
            errors.push(src.error(
                Some(block.span()),
                format!(
                    "block = {other:?}: give [output channels, inputs], two sizes of at least 1"
                ),
            ));
            None
        }
    }
}

fn check_variant(
    src: &Source,
    v: &VariantSpec,
    model: usize,
    m: &SuiteModel,
    datasets: &[Dataset],
    errors: &mut Vec<Diagnostic>,
) -> Option<SuiteVariant> {
    let before = errors.len();
    let as_is = as_is_quant(&m.graph);
    let q = v.quant.as_ref().unwrap_or(&as_is);
    let (scheme, quant, overrides) = check_quant(src, v, q, m, errors);
    let (pruning, pruning_text) = check_pruning(src, v, errors);
    let (exits, thresholds, exits_text) = check_exits(src, v, m, errors);
    let calibration = calibration_data(src, q, m, datasets, errors);
    if errors.len() > before {
        return None;
    }
    let recipe = Recipe {
        scheme,
        overrides,
        pruning,
        exits,
        weight_seed: m.seed,
        calibration,
        input_seed: m.seed ^ 0x5eed,
        memory: v.memory.unwrap_or_default(),
    };
    if let Err(e) = prepare::check_imported(&m.graph, &recipe) {
        errors.push(src.error(
            Some(v.name.span()),
            format!("variant `{}`: {e}", v.name.get_ref()),
        ));
        return None;
    }
    Some(SuiteVariant {
        name: v.name.get_ref().clone(),
        model,
        recipe,
        sweep: m.dataset.is_some() && !thresholds.is_empty(),
        validate: v.exits.as_ref().map_or(0, |e| e.validate),
        thresholds,
        summary: VariantSummary {
            quant,
            pruning: pruning_text,
            exits: exits_text,
        },
        as_imported: v.quant.is_none()
            && v.prune.is_none()
            && v.exits.is_none()
            && v.memory.is_none_or(|m| m == prepare::Schedule::Tensor),
    })
}

/// The quantization of a variant that gives none: the model as it is.
fn as_is_quant(graph: &Graph) -> QuantSpec {
    let imported_int8 = prepare::is_imported_int8(graph);
    QuantSpec {
        scheme: if imported_int8 {
            SchemeName::Int8
        } else {
            SchemeName::Float32
        },
        granularity: Granularity::PerChannel,
        calibration: default_calibration(),
        keep: None,
        layers: BTreeMap::new(),
    }
}

/// A variant's `quant`: the scheme, its summary and per-layer overrides.
fn check_quant(
    src: &Source,
    v: &VariantSpec,
    q: &QuantSpec,
    m: &SuiteModel,
    errors: &mut Vec<Diagnostic>,
) -> (Scheme, String, Vec<(String, Precision)>) {
    let imported_int8 = prepare::is_imported_int8(&m.graph);
    check_range(
        src,
        &q.calibration.samples,
        1..=MAX_CALIBRATION_SAMPLES,
        "calibration samples",
        errors,
    );
    if let (Some(keep), false) = (&q.keep, q.scheme == SchemeName::Binary) {
        let span = keep
            .first()
            .map(|k| k.span())
            .unwrap_or_else(|| v.name.span());
        errors.push(
            src.error(Some(span), "quant.keep names the layers a binary scheme keeps in int8; it does not apply here: remove it or use scheme = \"binary\""),
        );
    }
    let per_channel = q.granularity == Granularity::PerChannel;
    let (scheme, quant) = match q.scheme {
        SchemeName::Int8 if imported_int8 && per_channel => {
            (Scheme::Int8 { per_channel }, "int8 as imported".to_string())
        }
        SchemeName::Float32 => (Scheme::Float32, "float32".to_string()),
        SchemeName::Int8 => (
            Scheme::Int8 { per_channel },
            format!(
                "int8 {}",
                if per_channel {
                    "per-channel"
                } else {
                    "per-tensor"
                }
            ),
        ),
        SchemeName::Int4 => (Scheme::Int4, "int4".into()),
        SchemeName::Binary => {
            let keep = q.keep.as_ref().map(|k| {
                k.iter()
                    .filter(|n| check_layer(src, &m.graph, n, "quant.keep", errors))
                    .map(|n| n.get_ref().clone())
                    .collect()
            });
            (Scheme::Binary { keep }, "binary".into())
        }
    };
    let mut overrides = Vec::new();
    for (layer, format) in &q.layers {
        if check_layer(src, &m.graph, layer, "quant.layers", errors) {
            let precision = match format {
                LayerFormat::Int8 => Precision::Full,
                LayerFormat::Int4 => Precision::Int4,
                LayerFormat::Binary => Precision::Binary,
            };
            overrides.push((layer.get_ref().clone(), precision));
        }
    }
    (scheme, quant, overrides)
}

/// A variant's `prune`: the pruning and its summary.
fn check_pruning(
    src: &Source,
    v: &VariantSpec,
    errors: &mut Vec<Diagnostic>,
) -> (Option<Pruning>, String) {
    check_prune_keys(src, v.prune.as_ref(), errors);
    let mut pruning_text = String::new();
    let pruning = v.prune.as_ref().and_then(|p| match p.method.get_ref() {
        PruneMethod::Channels => fraction(src, &p.ratio, "ratio", &p.method, errors).map(|ratio| {
            let at_peak =
                p.objective.as_ref().map(|o| *o.get_ref()) == Some(PruneObjective::PeakSram);
            pruning_text = match at_peak {
                true => format!("channels {ratio} at the peak"),
                false => format!("channels {ratio}"),
            };
            Pruning::Channels { ratio, at_peak }
        }),
        PruneMethod::Magnitude => {
            fraction(src, &p.sparsity, "sparsity", &p.method, errors).map(|sparsity| {
                pruning_text = format!("magnitude {sparsity}");
                Pruning::Magnitude {
                    sparsity,
                    sparse_kernels: p.sparse_kernels.unwrap_or(true),
                }
            })
        }
        PruneMethod::Block => {
            let sparsity = fraction(src, &p.sparsity, "sparsity", &p.method, errors);
            let block = block_shape(src, p, errors);
            let (sparsity, block) = (sparsity?, block?);
            pruning_text = format!("block {}x{} {sparsity}", block[0], block[1]);
            Some(Pruning::Block {
                block,
                sparsity,
                sparse_kernels: p.sparse_kernels.unwrap_or(true),
            })
        }
    });
    (pruning, pruning_text)
}

/// Where a variant's exit heads go (empty: the model's own) and their measure.
type ExitHeads = (Vec<String>, Confidence);

/// A variant's `exits`: where the heads go and their measure, the
/// thresholds (each once, inside the measure's range) and a summary.
fn check_exits(
    src: &Source,
    v: &VariantSpec,
    m: &SuiteModel,
    errors: &mut Vec<Diagnostic>,
) -> (Option<ExitHeads>, Vec<f32>, String) {
    let mut thresholds = Vec::new();
    let mut exits_text = String::new();
    let exits = v.exits.as_ref().map(|e| {
        let at: Vec<String> = e.at.iter().filter(|n| check_layer(src, &m.graph, n, "exits.at", errors)).map(|n| n.get_ref().clone()).collect();
        for (i, layer) in e.at.iter().enumerate() {
            if e.at[..i].iter().any(|earlier| earlier.get_ref() == layer.get_ref()) {
                errors.push(src.error(Some(layer.span()), format!("exits.at names layer `{}` twice: one head per layer", layer.get_ref())));
            }
        }
        if e.at.len() > protocol::MAX_HEADS {
            errors.push(src.error(Some(e.at[0].span()), format!("at most {} exit heads are supported", protocol::MAX_HEADS)));
        }
        match (e.at.is_empty(), m.graph.exits.is_empty()) {
            (true, true) => errors.push(src.error(
                Some(v.name.span()),
                format!("variant `{}`: model `{}` has no exit heads of its own; say where to attach them with exits.at", v.name.get_ref(), m.name),
            )),
            (false, false) => {
                errors.push(src.error(Some(e.at[0].span()), format!("model `{}` has trained exit heads of its own; leave out exits.at to use them", m.name)))
            }
            _ => {}
        }
        let measure = Confidence::from(e.measure);
        let classes = m.graph.tensors[m.graph.output].shape.c as usize;
        let (lo, hi) = measure.threshold_range(classes);
        let listed = listed_thresholds(src, v, e, errors);
        for (x, span) in listed {
            if thresholds.contains(&x) {
                errors.push(src.error(Some(span), format!("threshold {x} is listed twice: each job id must be unique")));
                continue;
            }
            if !(lo..=hi).contains(&x) {
                errors
                    .push(src.error(Some(span), format!("threshold {x} is outside [{lo}, {hi:.4}], the range of {} for {classes} classes", e.measure.name())));
            }
            thresholds.push(x);
        }
        let heads = if at.is_empty() { format!("{} trained heads", m.graph.exits.len()) } else { at.join(",") };
        exits_text = format!("{heads} {}", e.measure.name());
        (at, measure)
    });
    (exits, thresholds, exits_text)
}

/// The thresholds `exits` lists, or its range expanded, with their spans.
fn listed_thresholds(
    src: &Source,
    v: &VariantSpec,
    e: &ExitSpec,
    errors: &mut Vec<Diagnostic>,
) -> Vec<(f32, std::ops::Range<usize>)> {
    let mut listed: Vec<(f32, std::ops::Range<usize>)> = Vec::new();
    match (&e.thresholds, &e.range) {
        (Some(t), None) => {
            if t.get_ref().is_empty() {
                errors.push(src.error(
                    Some(t.span()),
                    "exits.thresholds is empty: give at least one threshold",
                ));
            }
            listed.extend(t.get_ref().iter().map(|x| (*x.get_ref(), x.span())));
        }
        (None, Some(r)) => {
            let ThresholdRange { from, to, step } = *r.get_ref();
            let count = ((to - from) / step + 1e-3).floor() + 1.0;
            if !(step > 0.0 && to >= from && count <= 1000.0) {
                errors.push(src.error(
                    Some(r.span()),
                    format!("exits.range needs step > 0 and from <= to, with at most 1000 steps (from {from} to {to} step {step})"),
                ));
            } else {
                // Each threshold from its index, so 0.1 steps do not drift.
                listed.extend(
                    (0..count as usize)
                        .map(|i| (((from + step * i as f32) * 1e6).round() / 1e6, r.span())),
                );
            }
        }
        _ => errors.push(src.error(
            Some(v.name.span()),
            "exits needs exactly one of `thresholds = [...]` or `range = { from, to, step }`",
        )),
    }
    listed
}

/// The calibration inputs: synthetic, or the first samples of a dataset.
fn calibration_data(
    src: &Source,
    q: &QuantSpec,
    m: &SuiteModel,
    datasets: &[Dataset],
    errors: &mut Vec<Diagnostic>,
) -> CalibrationData {
    match &q.calibration.dataset {
        None => CalibrationData::Synthetic(*q.calibration.samples.get_ref(), q.calibration.seed),
        Some(name) => match find_dataset(src, datasets, name, &m.graph, errors) {
            Some(d) => {
                let data = &datasets[d];
                let input = m.graph.tensors[m.graph.input].shape;
                CalibrationData::Samples(
                    (0..(*q.calibration.samples.get_ref()).min(data.len()))
                        .map(|i| m.graph.layout.to_bench(input, &data.real(i), 1))
                        .collect(),
                )
            }
            None => CalibrationData::Synthetic(0, 0),
        },
    }
}
