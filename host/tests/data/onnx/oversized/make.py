# Made these files: minimal ONNX models that make tract 0.23.9 allocate gigabytes while it
# *loads* them (before the memory budget of host/src/inference/budget.rs refused them).
# `pip install onnx numpy` and run it to make them again; the tests read the files as they are.
import os

import onnx, numpy as np
from onnx import helper as h, TensorProto as T, numpy_helper as nh

def model(nodes, inits, out_name, out_type=T.FLOAT, extra_inputs=()):
    x = h.make_tensor_value_info("x", T.FLOAT, ["N", 1])
    y = h.make_tensor_value_info(out_name, out_type, None)
    g = h.make_graph(nodes, "g", [x, *extra_inputs], [y], initializer=inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 13)], producer_name="")
    m.ir_version = 7
    return m

def save(name, m):
    b = m.SerializeToString()
    open(os.path.join(os.path.dirname(os.path.abspath(__file__)), f"{name}.onnx"), "wb").write(b)
    print(f"{name:28s} {len(b):4d} bytes")

# A1. ConstantOfShape with a 1-element int64 shape initializer: 8e8 f32 = 3.2 GB.
s = nh.from_array(np.array([800_000_000], dtype=np.int64), "s")
save("constant_of_shape", model([h.make_node("ConstantOfShape", ["s"], ["y"], value=h.make_tensor("v", T.FLOAT, [1], [1.0]))], [s], "y"))

# A2. Range over three int64 scalars: 4e8 i64 = 3.2 GB.
r = [nh.from_array(np.array(v, dtype=np.int64), n) for v, n in [(0, "a"), (400_000_000, "b"), (1, "c")]]
save("range", model([h.make_node("Range", ["a", "b", "c"], ["y"])], r, "y", out_type=T.INT64))

# A3. Expand a scalar to [20000, 40000]: 8e8 f32 = 3.2 GB (Tile behaves the same).
e = [nh.from_array(np.array(1., dtype=np.float32), "k"), nh.from_array(np.array([20000, 40000], dtype=np.int64), "t")]
save("expand", model([h.make_node("Expand", ["k", "t"], ["y"])], e, "y"))

# A4. Two under-budget folds (4 MB each is kept as a value) then a broadcasting Add:
#     [1e6,1] + [1,800] -> 8e8 f32 = 3.2 GB, every input individually "small".
i = [nh.from_array(np.array([1_000_000, 1], dtype=np.int64), "s1"), nh.from_array(np.array([1, 800], dtype=np.int64), "s2")]
save("broadcast_add", model([
    h.make_node("ConstantOfShape", ["s1"], ["u"], value=h.make_tensor("v", T.FLOAT, [1], [1.0])),
    h.make_node("ConstantOfShape", ["s2"], ["w"], value=h.make_tensor("v", T.FLOAT, [1], [1.0])),
    h.make_node("Add", ["u", "w"], ["y"])], i, "y"))

# A5. No constant folding at all: a *non-constant* tensor whose shape is concrete
#     (Reshape of the input x to a constant shape, no -1 so no volume check), fed to
#     ConstantLike: its inference *rules* materialise the output value (3.2 GB).
c = [nh.from_array(np.array([40000, 20000], dtype=np.int64), "t")]
save("constant_like_rules", model([
    h.make_node("Reshape", ["x", "t"], ["r"]),
    h.make_node("ConstantLike", ["r"], ["y"])], c, "y"))

# A6. ConstantLike with no input: allocated by the op *builder*, i.e. inside model_for_proto_model.
save("constant_like_attribute", model([h.make_node("ConstantLike", [], ["y"], shape=[800_000_000])], [], "y"))

# A7. com.microsoft MatMulNBits (tract ignores the domain): its Expansion::wire, run by
#     into_typed, does `vec![0u8; n * k]` and `vec![0f32; n * n_blocks]` from the N and K
#     *attributes* before reading B. N = K = 2^20 asks for 1 TiB: the allocator fails and
#     Rust aborts the whole process (handle_alloc_error), which no catch_unwind can stop.
q = [nh.from_array(np.array([0], dtype=np.uint8), "B"), nh.from_array(np.array([1.], dtype=np.float32), "S")]
save("matmul_nbits_attributes", model([h.make_node("MatMulNBits", ["x", "B", "S"], ["y"], domain="com.microsoft",
      K=1 << 20, N=1 << 20, bits=4, block_size=16)], q, "y"))

# A8. Gather fan-out: a 4 MB table (1e6 f32, kept by tract because it fits its own 4 MB
#     allowance) indexed by 800 zeros -> [800, 1e6] f32 = 3.2 GB. Every fold attempt
#     (analysis, then PropConst on *each* optimizer iteration, declutter and codegen)
#     allocates and fills it before the size check throws it away.
g = [nh.from_array(np.array([1, 1_000_000], dtype=np.int64), "s1"), nh.from_array(np.array([800], dtype=np.int64), "s2")]
save("gather_fan_out", model([
    h.make_node("ConstantOfShape", ["s1"], ["d"], value=h.make_tensor("v", T.FLOAT, [1], [1.0])),
    h.make_node("ConstantOfShape", ["s2"], ["i"], value=h.make_tensor("z", T.INT64, [1], [0])),
    h.make_node("Gather", ["d", "i"], ["y"], axis=0)], g, "y"))

# A9. Concat of one 4 MB constant repeated k times. tract's analysis-time check compares the
#     output with the *sum* of the input sizes (the shared input counted k times), so this
#     fold is accepted and kept: k * 4 MB resident. k = 60 fits in ~300 bytes (240 MB);
#     k = 1000 is ~3 KB and 4 GB.
for k in (60, 1000):
    c = [nh.from_array(np.array([1_000_000], dtype=np.int64), "s")]
    save(f"concat_repeated_{k}", model([
        h.make_node("ConstantOfShape", ["s"], ["u"], value=h.make_tensor("v", T.FLOAT, [1], [1.0])),
        h.make_node("Concat", ["u"] * k, ["y"], axis=0)], c, "y"))
