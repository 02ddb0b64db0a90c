// Circular padding by one pixel as a single autograd op, for `src/model/circular_pad.rs`.
//
// With H×W planes, the padded plane is
//     out[i, j] = x[(i − 1) mod H, (j − 1) mod W],   i ∈ [0, H + 2), j ∈ [0, W + 2),
// and the gradient folds back: gx = interior of g, plus each border strip of g added onto the
// row or column it copied (the corners onto the opposite corners).
//
// Why an op of its own: built from differentiable pieces (two concatenations, or libtorch's
// circular pad mode), the pad's backward materialises a zero tensor of the input's size for
// every strip it cuts and sums them; here the forward is one allocation and five copies, the
// backward one copy and eight strip additions. tch has no custom autograd functions, so this is
// C++ against the same libtorch (compiled by build.rs, like the c10d shim).
#include <ATen/ATen.h>
#include <torch/csrc/autograd/custom_function.h>

#include "guarded.h"

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;

struct CircularPad : public torch::autograd::Function<CircularPad> {
  static at::Tensor forward(AutogradContext*, const at::Tensor& x) {
    TORCH_CHECK(x.dim() == 4, "circular pad: expected a 4-d tensor (N, C, H, W), got ", x.dim(), " dimensions");
    const int64_t h = x.size(2), w = x.size(3);
    TORCH_CHECK(h >= 1 && w >= 1, "circular pad: empty planes");
    auto out = at::empty({x.size(0), x.size(1), h + 2, w + 2}, x.options().memory_format(x.suggest_memory_format()));
    auto rows = out.narrow(2, 1, h);
    rows.narrow(3, 1, w).copy_(x);
    rows.narrow(3, 0, 1).copy_(x.narrow(3, w - 1, 1));
    rows.narrow(3, w + 1, 1).copy_(x.narrow(3, 0, 1));
    // Whole padded rows, corners included: the top copies the last row, the bottom the first.
    out.narrow(2, 0, 1).copy_(out.narrow(2, h, 1));
    out.narrow(2, h + 1, 1).copy_(out.narrow(2, 1, 1));
    return out;
  }

  static variable_list backward(AutogradContext*, variable_list grads) {
    const auto& g = grads[0];
    const int64_t h = g.size(2) - 2, w = g.size(3) - 2;
    auto inner = [&](int64_t i, int64_t j, int64_t nh, int64_t nw) { return g.narrow(2, i, nh).narrow(3, j, nw); };
    // A clone, never a view of `g` (contiguous() could return `g` itself for odd strides).
    auto gx = inner(1, 1, h, w).clone(g.suggest_memory_format());
    gx.narrow(3, w - 1, 1).add_(inner(1, 0, h, 1));
    gx.narrow(3, 0, 1).add_(inner(1, w + 1, h, 1));
    gx.narrow(2, h - 1, 1).add_(inner(0, 1, 1, w));
    gx.narrow(2, 0, 1).add_(inner(h + 1, 1, 1, w));
    auto corner = [&](int64_t i, int64_t j) { return gx.narrow(2, i, 1).narrow(3, j, 1); };
    corner(h - 1, w - 1).add_(inner(0, 0, 1, 1));
    corner(h - 1, 0).add_(inner(0, w + 1, 1, 1));
    corner(0, w - 1).add_(inner(h + 1, 0, 1, 1));
    corner(0, 0).add_(inner(h + 1, w + 1, 1, 1));
    return {gx};
  }
};

}  // namespace

extern "C" {

// `*out` receives a new tensor (freed by tch's `at_free` when the Rust `Tensor` drops). Returns 0,
// or 1 with a message in `*err` (freed by `lacuna_circular_pad_free_error`).
int lacuna_circular_pad(const at::Tensor* x, at::Tensor** out, char** err) {
  return lacuna::guarded(err, [&] { *out = new at::Tensor(CircularPad::apply(*x)); }) ? 0 : 1;
}

void lacuna_circular_pad_free_error(char* err) { std::free(err); }

}  // extern "C"
