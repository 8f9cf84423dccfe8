//! Loading an ONNX model within a memory budget.
//!
//! tract folds constant subgraphs while it loads a model, and it allocates a folded tensor
//! before it compares its size with anything: a 119-byte file whose `ConstantOfShape` asks for
//! 800 million floats makes it allocate 3.2 GB, which no error handling can catch (a failed
//! allocation aborts the process, or the kernel kills it while it fills the pages). So every
//! size is worked out from tract's own shape rules *before* anything is evaluated, and a model
//! that would exceed the budget is refused with the node that would have done it:
//!
//! 1. a pre-pass over the protobuf refuses what allocates from attributes or is analysed
//!    outside the guard (sub-graphs, a few operators), external data, declared constants above
//!    the budget, and graphs with too many nodes;
//! 2. every operator of the inference model is wrapped ([`Guarded`]): its eager evaluation
//!    during analysis, and its folding while the model is translated to a typed one, happen
//!    only after the output's size, derived from the inputs by the operator's own rules, is
//!    found within the budget;
//! 3. the typed model is checked before every step of tract's optimiser (which folds constants
//!    too) and at the end: every constant within the budget, every other tensor depending only
//!    on the batch size and within a budget per row.
//!
//! The result's [`Footprint`] says how many rows one run of the plan may take within a run
//! budget, so callers split larger batches. What this does not bound: CPU time (the node count
//! is capped, and callers run loads off the async threads), and the temporaries inside one
//! operator's evaluation. Tied to tract 0.23's operators and passes: re-read on an upgrade.

use std::collections::HashMap;
use std::sync::Arc;

use tract_onnx::pb::{self, ModelProto};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::konst::Const as TypedConst;
use tract_onnx::tract_core::ops::source::TypedSource;
use tract_onnx::tract_core::optim::{
    CONST_FOLD_MEM_BUDGET, Optimizer, OptimizerSession, TypedPass,
};
use tract_onnx::tract_hir::internal::*;

/// What a model may hold and make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// The largest constant: an initializer, or a tensor folded at load.
    pub max_constant_bytes: u64,
    /// All of the loaded model's constants together.
    pub max_total_constant_bytes: u64,
    /// The largest tensor the model makes for one row of its batch.
    pub max_bytes_per_row: u64,
    /// Nodes in the graph (analysis and optimisation cost more than linear time in them).
    pub max_nodes: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_constant_bytes: 256 << 20,
            max_total_constant_bytes: 1 << 30,
            max_bytes_per_row: 4 << 20,
            max_nodes: 20_000,
        }
    }
}

/// What constants may hold beyond the file's own bytes: what folding may add.
const FOLDED_ALLOWANCE: u64 = 64 << 20;

impl Limits {
    /// The default limits, with all constants together held within `bytes` (a plugin's
    /// remaining output budget, say).
    pub fn within(bytes: u64) -> Limits {
        let default = Limits::default();
        Limits {
            max_constant_bytes: default.max_constant_bytes.min(bytes),
            max_total_constant_bytes: default.max_total_constant_bytes.min(bytes),
            ..default
        }
    }

    /// These limits for a file of `len` bytes: its constants may hold what the file holds
    /// (twice, for a conversion to a wider type) and a few tens of megabytes folded at load,
    /// not more, so a file of a few hundred bytes cannot make a model of gigabytes.
    pub fn for_file(self, len: usize) -> Limits {
        let room = (len as u64)
            .saturating_mul(2)
            .saturating_add(FOLDED_ALLOWANCE);
        Limits {
            max_constant_bytes: self.max_constant_bytes.min(room),
            max_total_constant_bytes: self.max_total_constant_bytes.min(room),
            ..self
        }
    }
}

/// What a model would have made beyond the limits, and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BudgetExceeded {
    /// The node, as tract names it (its name in the file, or its first output's).
    pub node: String,
    pub op: String,
    /// What it would have made: a constant, a folded constant, a tensor per row...
    pub what: &'static str,
    /// How large it would have been; `None` when it cannot be bounded.
    pub bytes: Option<u128>,
    pub limit: u64,
}

impl std::fmt::Display for BudgetExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let node = format!("node `{}` ({})", self.node, self.op);
        match (self.what, self.bytes) {
            (GRAPH_TOO_LARGE, _) => write!(
                f,
                "the graph has more nodes than the limit of {}",
                self.limit
            ),
            (EXTERNAL_DATA, _) => write!(f, "{node} reads its data from another file"),
            (TEXT_IN_RAW_BYTES, _) => {
                write!(f, "{node} holds text as raw bytes, which tract cannot read")
            }
            (REFUSED_OPERATOR, _) => write!(
                f,
                "{node} is an operator that allocates from its attributes or runs a sub-graph, which the memory budget cannot bound"
            ),
            (SUB_GRAPH, _) => write!(
                f,
                "{node} carries a sub-graph, which the memory budget cannot bound"
            ),
            (UNBOUNDED_TENSOR, _) => write!(
                f,
                "{node} makes a tensor whose size depends on more than the batch size"
            ),
            (what, Some(bytes)) => write!(
                f,
                "{node} would make a {what} of {bytes} bytes, above the limit of {} bytes",
                self.limit
            ),
            (what, None) => write!(f, "{node} would make a {what} whose size cannot be bounded"),
        }
    }
}

/// What a refusal says, for [`BudgetExceeded::what`].
const GRAPH_TOO_LARGE: &str = "graph of more nodes than allowed";
const EXTERNAL_DATA: &str = "tensor with external data";
const TEXT_IN_RAW_BYTES: &str = "text tensor in raw bytes";
const REFUSED_OPERATOR: &str = "refused operator";
const SUB_GRAPH: &str = "sub-graph";
const UNBOUNDED_TENSOR: &str = "tensor whose size depends on more than the batch";

impl std::error::Error for BudgetExceeded {}

/// The refusal inside a tract error, if that is what it is.
pub fn exceeded(err: &anyhow::Error) -> Option<&BudgetExceeded> {
    err.chain().find_map(|e| e.downcast_ref::<BudgetExceeded>())
}

/// What a loaded model holds, and costs per row of a batch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Bytes of its constants.
    pub constant_bytes: u64,
    /// An upper bound on the bytes of the tensors one row makes (every tensor at once).
    pub bytes_per_row: u64,
}

impl Footprint {
    /// Rows one run may take for its tensors to fit `budget` bytes (at least one).
    pub fn rows_per_run(&self, budget: u64) -> usize {
        (budget / self.bytes_per_row.max(1)).clamp(1, 1 << 20) as usize
    }
}

/// Operators that allocate from their attributes, or whose sub-graphs tract analyses without
/// the guard; none is needed by the tabular models served here.
const REFUSED_OPERATORS: &[&str] = &[
    "ConstantLike",
    "MatMulNBits",
    "GatherBlockQuantized",
    "If",
    "Loop",
    "Scan",
    "RandomNormal",
    "RandomUniform",
    "RandomNormalLike",
    "RandomUniformLike",
    "Multinomial",
    "DFT",
    "STFT",
    "MelWeightMatrix",
    "HannWindow",
    "HammingWindow",
    "BlackmanWindow",
];

fn tensor_bytes(tensor: &Tensor) -> u128 {
    tensor.volume() as u128 * tensor.datum_type().size_of() as u128
}

/// The name tract gives a node: its own, else its first output's.
fn node_label(node: &pb::NodeProto) -> String {
    if node.name.is_empty() {
        node.output.first().cloned().unwrap_or_default()
    } else {
        node.name.clone()
    }
}

/// Refuses, before tract reads any of it, what the protobuf alone shows is beyond the limits.
pub fn prepass(proto: &ModelProto, limits: &Limits) -> Result<(), BudgetExceeded> {
    let refuse = |node: &str, op: &str, what: &'static str, bytes: Option<u128>| BudgetExceeded {
        node: node.to_string(),
        op: op.to_string(),
        what,
        bytes,
        limit: limits.max_constant_bytes,
    };
    let Some(graph) = &proto.graph else {
        return Ok(());
    };
    if graph.node.len() > limits.max_nodes {
        return Err(BudgetExceeded {
            limit: limits.max_nodes as u64,
            ..refuse("", "", GRAPH_TOO_LARGE, None)
        });
    }
    let check_tensor = |tensor: &pb::TensorProto, owner: &str, op: &str| {
        if tensor.data_location == Some(pb::tensor_proto::DataLocation::External as i32)
            || !tensor.external_data.is_empty()
        {
            return Err(refuse(owner, op, EXTERNAL_DATA, None));
        }
        // tract cannot read text from raw bytes (it panics).
        if tensor.data_type == pb::tensor_proto::DataType::String as i32
            && !tensor.raw_data.is_empty()
        {
            return Err(refuse(owner, op, TEXT_IN_RAW_BYTES, None));
        }
        let elements = tensor.dims.iter().try_fold(1u128, |count, &dim| {
            u128::try_from(dim)
                .ok()
                .and_then(|dim| count.checked_mul(dim))
        });
        match elements.and_then(|e| e.checked_mul(8)) {
            Some(bytes) if bytes <= u128::from(limits.max_constant_bytes) => Ok(()),
            bytes => Err(refuse(owner, op, "constant", bytes)),
        }
    };
    for tensor in &graph.initializer {
        check_tensor(tensor, &tensor.name, "initializer")?;
    }
    for node in &graph.node {
        let label = node_label(node);
        if REFUSED_OPERATORS.contains(&node.op_type.as_str()) {
            return Err(refuse(&label, &node.op_type, REFUSED_OPERATOR, None));
        }
        for attribute in &node.attribute {
            if attribute.g.is_some() || !attribute.graphs.is_empty() {
                return Err(refuse(&label, &node.op_type, SUB_GRAPH, None));
            }
            if let Some(tensor) = &attribute.t {
                check_tensor(tensor, &label, &node.op_type)?;
            }
            for tensor in &attribute.tensors {
                check_tensor(tensor, &label, &node.op_type)?;
            }
        }
    }
    Ok(())
}

/// Bytes of a fact whose shape is fully known; an unknown element type counts 16 bytes.
fn inference_fact_bytes(fact: &InferenceFact) -> Option<u128> {
    let dims = fact.shape.as_concrete_finite().ok()??;
    let elements = dims
        .iter()
        .try_fold(1u128, |count, &dim| count.checked_mul(dim as u128))?;
    let size = fact
        .datum_type
        .concretize()
        .map(|datum| datum.size_of())
        .unwrap_or(16)
        .max(1);
    elements.checked_mul(size as u128)
}

/// The bytes of an operator's outputs as its rules derive them from its inputs alone (on a
/// copy, with blank output facts, so a declared output shape cannot make them look smaller).
fn derived_output_bytes(
    op: &dyn InferenceOp,
    inputs: &[&InferenceFact],
    outputs: usize,
) -> Option<u128> {
    let mut probe = tract_onnx::tract_core::dyn_clone::clone_box(op);
    let blank: TVec<InferenceFact> = (0..outputs).map(|_| InferenceFact::default()).collect();
    let (_, derived, _) = probe
        .infer_facts(
            inputs.iter().copied().collect(),
            blank.iter().collect(),
            tvec!(),
        )
        .ok()?;
    derived.iter().try_fold(0u128, |total, fact| {
        total.checked_add(inference_fact_bytes(fact)?)
    })
}

/// An inference operator whose evaluation at load time waits until its output's size is known
/// to be within the limits.
#[derive(Debug, Clone)]
struct Guarded {
    inner: Box<dyn InferenceOp>,
    node: String,
    limits: Limits,
}

impl Guarded {
    fn exceeded(&self, what: &'static str, bytes: Option<u128>) -> TractError {
        BudgetExceeded {
            node: self.node.clone(),
            op: self.inner.as_op().name().to_string(),
            what,
            bytes,
            limit: self.limits.max_constant_bytes,
        }
        .into()
    }

    /// `EyeLike` builds its output inside its rules, from its input's shape alone.
    fn check_rules(&self, inputs: &[&InferenceFact]) -> TractResult<()> {
        if self.inner.as_op().name() == "EyeLike"
            && let Some(dims) = inputs
                .first()
                .and_then(|fact| fact.shape.as_concrete_finite().ok().flatten())
        {
            let bytes = dims
                .iter()
                .try_fold(8u128, |count, &dim| count.checked_mul(dim as u128));
            if bytes.is_none_or(|bytes| bytes > u128::from(self.limits.max_constant_bytes)) {
                return Err(self.exceeded("constant", bytes));
            }
        }
        Ok(())
    }
}

impl PartialEq for Guarded {
    fn eq(&self, _other: &Guarded) -> bool {
        // As tract compares its own boxed expansions: never equal, so never merged.
        false
    }
}

impl Eq for Guarded {}

impl EvalOp for Guarded {
    fn eval(&self, ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        EvalOp::eval(&*self.inner, ctx, inputs)
    }

    fn forwards_input(&self) -> Option<usize> {
        self.inner.forwards_input()
    }

    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        self.inner.eval_out_of_plan(inputs)
    }

    fn state(&self, ctx: &EvalContext) -> TractResult<Option<Box<dyn OpState>>> {
        self.inner.state(ctx)
    }

    fn drop_session(&self, session: SessionId, node_id: usize) {
        self.inner.drop_session(session, node_id)
    }
}

impl Op for Guarded {
    fn name(&self) -> StaticName {
        self.inner.as_op().name()
    }

    fn validation(&self) -> Validation {
        self.inner.as_op().validation()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        self.inner.as_op().info()
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        self.inner.as_op().as_typed()
    }
}

impl InferenceOp for Guarded {
    /// tract's own `infer` (its facts, then an eager evaluation when every input is a small
    /// known value), with the size of the result checked before it is computed rather than
    /// after.
    fn infer(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(
        TVec<InferenceFact>,
        TVec<InferenceFact>,
        TVec<InferenceFact>,
    )> {
        self.check_rules(&inputs)?;
        let (inputs, outputs, observed) = self
            .inner
            .infer_facts(inputs, outputs, observed)
            .context("Infering facts")?;
        if inputs.is_empty() {
            return Ok((inputs, outputs, observed));
        }
        let Some(values) = inputs
            .iter()
            .map(|fact| {
                fact.value.concretize().filter(|tensor| {
                    tensor.is_plain_ram()
                        && tensor_bytes(tensor) <= u128::from(CONST_FOLD_MEM_BUDGET)
                })
            })
            .collect::<Option<TVec<Arc<Tensor>>>>()
        else {
            return Ok((inputs, outputs, observed));
        };
        let input_bytes: u128 = values.iter().map(|t| tensor_bytes(t)).sum();
        let derived = {
            let facts: TVec<&InferenceFact> = inputs.iter().collect();
            derived_output_bytes(&*self.inner, &facts, outputs.len())
        };
        match derived {
            // Not known yet: no folding now; a node still all-constant when it is translated
            // is checked in `to_typed`.
            None => return Ok((inputs, outputs, observed)),
            Some(bytes) if bytes > u128::from(self.limits.max_constant_bytes) => {
                return Err(self.exceeded("folded constant", Some(bytes)));
            }
            // tract would compute it and then discard it as too large to keep.
            Some(bytes) if bytes > input_bytes.max(u128::from(CONST_FOLD_MEM_BUDGET)) => {
                return Ok((inputs, outputs, observed));
            }
            Some(_) => {}
        }
        let values = values.into_iter().map(|t| t.into_tvalue()).collect();
        match self.inner.eval_out_of_plan(values) {
            Ok(None) => Ok((inputs, outputs, observed)),
            Ok(Some(values)) => {
                let outputs = values
                    .into_iter()
                    .map(|t| InferenceFact::try_from(t.into_arc_tensor()))
                    .collect::<TractResult<TVec<_>>>()?;
                Ok((inputs, outputs, observed))
            }
            Err(err)
                if err
                    .root_cause()
                    .downcast_ref::<tract_onnx::prelude::tract_data::TooEarly>()
                    .is_some() =>
            {
                Ok((inputs, outputs, observed))
            }
            Err(err) => Err(err).context("Eager eval during inference"),
        }
    }

    fn infer_facts(
        &mut self,
        inputs: TVec<&InferenceFact>,
        outputs: TVec<&InferenceFact>,
        observed: TVec<&InferenceFact>,
    ) -> TractResult<(
        TVec<InferenceFact>,
        TVec<InferenceFact>,
        TVec<InferenceFact>,
    )> {
        self.inner.infer_facts(inputs, outputs, observed)
    }

    fn observe_outlets(
        &self,
        model: &InferenceModel,
        node: &InferenceNode,
    ) -> TractResult<Vec<OutletId>> {
        self.inner.observe_outlets(model, node)
    }

    fn incorporate(
        &self,
        model: &InferenceModel,
        node: &InferenceNode,
    ) -> TractResult<Option<InferenceModelPatch>> {
        self.inner.incorporate(model, node)
    }

    fn nboutputs(&self) -> TractResult<usize> {
        self.inner.nboutputs()
    }

    // Downcasts go through these, so the wrapper is invisible to the code that looks for a
    // particular operator.
    fn as_op(&self) -> &dyn Op {
        self.inner.as_op()
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self.inner.as_op_mut()
    }

    /// Translation folds a node whose inputs are all small constants without any check of
    /// its output: its size is bounded first.
    fn to_typed(
        &self,
        source: &InferenceModel,
        node: &InferenceNode,
        target: &mut TypedModel,
        mapping: &HashMap<OutletId, OutletId>,
    ) -> TractResult<TVec<OutletId>> {
        let all_constant = !node.inputs.is_empty()
            && node.inputs.iter().all(|input| {
                target
                    .outlet_fact(mapping[input])
                    .is_ok_and(|fact| fact.konst.is_some())
            });
        if all_constant {
            let inputs = node
                .inputs
                .iter()
                .map(|input| source.outlet_fact(*input))
                .collect::<TractResult<TVec<&InferenceFact>>>()?;
            match derived_output_bytes(&*self.inner, &inputs, node.outputs.len()) {
                Some(bytes) if bytes <= u128::from(self.limits.max_constant_bytes) => {}
                bytes => return Err(self.exceeded("folded constant", bytes)),
            }
        }
        self.inner.to_typed(source, node, target, mapping)
    }
}

/// Wraps every operator but sources and constants in a [`Guarded`].
pub fn guard(model: &mut InferenceModel, limits: Limits) {
    for node in model.nodes.iter_mut() {
        let op = node.op.as_op();
        if op.is::<tract_onnx::tract_hir::ops::source::Source>() || op.is::<TypedConst>() {
            continue;
        }
        let inner = node.op.clone();
        node.op = Box::new(Guarded {
            inner,
            node: node.name.clone(),
            limits,
        });
    }
}

/// Bytes of a typed fact with its symbols given `values`; `None` when a dimension still holds
/// a symbol, is negative or overflows.
fn fact_bytes_at(fact: &TypedFact, values: &SymbolValues) -> Option<u128> {
    let mut elements: u128 = 1;
    for dim in fact.shape.iter() {
        let dim = dim.maybe_eval_to_i64(values)?;
        elements = elements.checked_mul(u128::try_from(dim).ok()?)?;
    }
    elements.checked_mul(fact.datum_type.size_of() as u128)
}

fn refusal(node: &TypedNode, what: &'static str, bytes: Option<u128>, limit: u64) -> TractError {
    BudgetExceeded {
        node: node.name.clone(),
        op: node.op.name().to_string(),
        what,
        bytes,
        limit,
    }
    .into()
}

/// Checks every constant of a typed model (and every node the optimiser could fold into one)
/// against the limits; with `runtime`, every other tensor too, per row of the batch `batch`.
pub fn check_typed(
    model: &TypedModel,
    limits: &Limits,
    batch: Option<&Symbol>,
    runtime: bool,
) -> TractResult<Footprint> {
    let fixed = SymbolValues::default();
    let mut one_row = SymbolValues::default();
    let mut many_rows = SymbolValues::default();
    const MANY: i64 = 1024;
    if let Some(batch) = batch {
        one_row.set(batch, 1);
        many_rows.set(batch, MANY);
    }
    let mut folds = vec![false; model.nodes.len()];
    let mut constant_bytes: u128 = 0;
    let mut bytes_per_row: u128 = 0;
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        // The optimiser folds any node but a source whose inputs all fold (a node without
        // inputs among them).
        let folded = !node.op.is::<TypedSource>()
            && (node.op.is::<TypedConst>() || node.inputs.iter().all(|i| folds[i.node]));
        folds[id] = folded;
        for output in &node.outputs {
            let fact = &output.fact;
            if (folded || fact.konst.is_some())
                && let Some(bytes) = fact_bytes_at(fact, &fixed)
            {
                if bytes > u128::from(limits.max_constant_bytes) {
                    return Err(refusal(
                        node,
                        "constant",
                        Some(bytes),
                        limits.max_constant_bytes,
                    ));
                }
                constant_bytes += bytes;
                continue;
            }
            if folded {
                // The optimiser would compute it now, and nothing says how large it is (its
                // size depends on values): refused before tract allocates it.
                return Err(refusal(
                    node,
                    UNBOUNDED_TENSOR,
                    None,
                    limits.max_constant_bytes,
                ));
            }
            if !runtime {
                continue;
            }
            let (Some(one), Some(many)) = (
                fact_bytes_at(fact, &one_row),
                fact_bytes_at(fact, &many_rows),
            ) else {
                return Err(refusal(
                    node,
                    UNBOUNDED_TENSOR,
                    None,
                    limits.max_bytes_per_row,
                ));
            };
            // Within the limit for one row, and growing no faster than the batch: a size
            // like N x N passes at one row but not at many.
            let per_row = one.max(many.div_ceil(MANY as u128));
            if per_row > u128::from(limits.max_bytes_per_row) || many > one * MANY as u128 {
                return Err(refusal(
                    node,
                    "tensor per row",
                    Some(per_row),
                    limits.max_bytes_per_row,
                ));
            }
            bytes_per_row += per_row;
        }
    }
    if constant_bytes > u128::from(limits.max_total_constant_bytes) {
        return Err(BudgetExceeded {
            node: String::new(),
            op: String::new(),
            what: "set of constants",
            bytes: Some(constant_bytes),
            limit: limits.max_total_constant_bytes,
        }
        .into());
    }
    Ok(Footprint {
        constant_bytes: constant_bytes.min(u128::from(u64::MAX)) as u64,
        bytes_per_row: bytes_per_row.min(u128::from(u64::MAX)) as u64,
    })
}

/// An optimiser pass that checks the model's constants before each of its steps, so a fold
/// it is about to make is known to fit.
#[derive(Debug, Clone)]
struct Checked {
    inner: Box<dyn TypedPass>,
    limits: Limits,
}

impl TypedPass for Checked {
    fn reset(&mut self) -> TractResult<()> {
        self.inner.reset()
    }

    fn next(
        &mut self,
        session: &mut OptimizerSession,
        model: &TypedModel,
    ) -> TractResult<Option<TypedModelPatch>> {
        check_typed(model, &self.limits, None, false)?;
        self.inner.next(session, model)
    }

    fn run_direct(&mut self, model: &mut TypedModel) -> TractResult<bool> {
        self.inner.run_direct(model)
    }
}

fn checked(mut optimizer: Optimizer, limits: Limits) -> Optimizer {
    optimizer.passes = optimizer
        .passes
        .into_iter()
        .map(|inner| Box::new(Checked { inner, limits }) as Box<dyn TypedPass>)
        .collect();
    optimizer
}

/// What tract's `into_optimized` does (translate, declutter, optimise), with every step held
/// within `limits`; the model's inputs must be set already, with `batch` the batch size.
pub fn optimize(
    model: InferenceModel,
    limits: Limits,
    batch: &Symbol,
) -> TractResult<(TypedModel, Footprint)> {
    let mut typed = model.into_typed()?;
    check_typed(&typed, &limits, Some(batch), true)?;
    checked(Optimizer::declutter(), limits)
        .session()
        .optimize(&mut typed)?;
    typed.optimize_with_session(&mut checked(Optimizer::codegen(), limits).session())?;
    let footprint = check_typed(&typed, &limits, Some(batch), true)?;
    Ok((typed, footprint))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inference::{ModelInfo, Session, Task};

    fn oversized(name: &str) -> Vec<u8> {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/onnx/oversized")
            .join(format!("{name}.onnx"));
        std::fs::read(&path).unwrap_or_else(|err| panic!("{}: {err}", path.display()))
    }

    fn info() -> ModelInfo {
        ModelInfo {
            features: vec!["x".into()],
            target: "y".into(),
            task: Task::Regression,
            class_labels: Vec::new(),
        }
    }

    /// Each of these files, a few hundred bytes, made tract allocate gigabytes while loading
    /// (or abort the process): now each is refused, naming the node, before anything large is
    /// allocated. Were the budget not enforced, this test would run out of memory.
    #[test]
    fn issue_22_small_files_that_would_fold_into_gigabytes_are_refused_naming_the_node() {
        for (name, node) in [
            ("constant_of_shape", "y"),
            ("range", "y"),
            ("expand", "y"),
            ("broadcast_add", "y"),
            ("constant_like_rules", "y"),
            ("constant_like_attribute", "y"),
            ("matmul_nbits_attributes", "y"),
            ("gather_fan_out", "y"),
            ("concat_repeated_60", "y"),
            ("concat_repeated_1000", "y"),
        ] {
            let bytes = oversized(name);
            assert!(bytes.len() < 4096, "{name}");
            let err = Session::load(&bytes, Some(info())).unwrap_err().to_string();
            assert!(
                err.starts_with("the model is too large to load:"),
                "{name}: {err}"
            );
            assert!(err.contains(&format!("node `{node}`")), "{name}: {err}");
            let served =
                crate::serve::model::ServedModel::load("m", "1", name.into(), &bytes).unwrap_err();
            assert!(
                served.to_string().contains("too large to load"),
                "{name}: {served}"
            );
        }
    }

    #[test]
    fn the_limits_follow_the_file_and_a_plugins_budget() {
        let limits = Limits::default().for_file(1000);
        assert_eq!(limits.max_constant_bytes, 2000 + FOLDED_ALLOWANCE);
        let large = Limits::default().for_file(1 << 30);
        assert_eq!(large, Limits::default());
        assert_eq!(Limits::within(1 << 20).max_total_constant_bytes, 1 << 20);
        assert_eq!(
            Footprint {
                constant_bytes: 0,
                bytes_per_row: 1 << 20
            }
            .rows_per_run(64 << 20),
            64
        );
    }
}
