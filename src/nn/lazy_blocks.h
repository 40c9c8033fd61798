// A model's stack of identical blocks ("transformer_blocks.<i>", "encoder.block.<i>"), resident or
// streamed by the context (ModuleContext::stream_group):
//  - resident (0): every block is built at load; the checkpoint pages each block consumed are
//    handed back right after it is built, so the process holds only the packed/quantized copies;
//  - streamed (N > 0): at load every block is checked (tensor names, shapes and stored quantized
//    parts, without packing or quantizing anything) so a bad checkpoint still fails at load with
//    one report; at run time groups of N blocks are built by a prefetch thread just before use and
//    dropped after (nn::BlockStream).
// A model holds LazyBlocks<Block> instead of std::vector<Block> and iterates with for_each.
#pragma once
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "qdit/core/error.h"
#include "qdit/nn/block_stream.h"
#include "qdit/nn/context.h"
#include "qdit/nn/weight_binder.h"

namespace qdit::nn {

// A factory that checks what `inner` would be given (shapes, stored parts) and builds no kernel:
// its Linears cannot run. Used to validate streamed blocks at load.
std::shared_ptr<const LinearFactory> shape_checking_factory(std::shared_ptr<const LinearFactory> inner);

template <typename Block>
class LazyBlocks {
 public:
  // build(binder scoped at "<name>.<i>", i, ctx) -> the block.
  using Build = std::function<Block(const WeightBinder&, int64_t, const ModuleContext&)>;

  LazyBlocks() = default;
  LazyBlocks(const WeightBinder& parent, const std::string& name, int64_t count, const ModuleContext& ctx,
             Build build)
      : s_(std::make_shared<State>(parent)) {
    s_->name = name;
    s_->count = count;
    s_->ctx = ctx;
    s_->build = std::move(build);
    const std::shared_ptr<const io::WeightSource>& src = parent.source();
    if (ctx.stream_group <= 0) {
      s_->blocks.reserve(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i) {
        s_->blocks.push_back(s_->build(parent.sub(name, i), i, ctx));
        src->drop_pages(s_->prefix(i));
      }
      return;
    }
    ModuleContext check = ctx;
    check.linear_factory = shape_checking_factory(ctx.linear_factory);
    check.fuse_qkv = false;  // the same tensors and shapes, without concatenating their data
    for (int64_t i = 0; i < count; ++i) {
      (void)s_->build(parent.sub(name, i), i, check);
      src->drop_pages(s_->prefix(i));
    }
    if (count == 0) return;
    const int64_t group = ctx.stream_group, groups = (count + group - 1) / group;
    State* st = s_.get();  // the stream lives inside the state it reads
    st->stream = std::make_unique<BlockStream>(
        groups,
        [st, group](int64_t g) -> BlockStream::Group {
          const WeightBinder fresh = st->parent.detached();  // this thread's own binder state
          auto blocks = std::make_shared<std::vector<Block>>();
          for (int64_t i = g * group; i < std::min(st->count, (g + 1) * group); ++i) {
            blocks->push_back(st->build(fresh.sub(st->name, i), i, st->ctx));
            st->parent.source()->drop_pages(st->prefix(i));
          }
          return blocks;
        },
        [st, group](int64_t g) {
          for (int64_t i = g * group; i < std::min(st->count, (g + 1) * group); ++i)
            st->parent.source()->drop_pages(st->prefix(i));
        });
  }

  // f(const Block&) for every block in order (streamed: group by group, prefetching the next).
  template <typename F>
  void for_each(F&& f) const {
    if (!s_) return;
    if (!s_->stream) {
      for (const Block& b : s_->blocks) f(b);
      return;
    }
    s_->stream->run([&](const BlockStream::Group& g, int64_t) {
      for (const Block& b : *static_cast<const std::vector<Block>*>(g.get())) f(b);
    });
  }

  int64_t size() const { return s_ ? s_->count : 0; }
  bool streamed() const { return s_ && s_->stream; }
  // Bytes of the resident blocks (0 when streamed: groups exist only while they run).
  size_t weight_bytes() const {
    size_t n = 0;
    if (s_)
      for (const Block& b : s_->blocks) n += b.weight_bytes();
    return n;
  }

 private:
  struct State {
    explicit State(const WeightBinder& p) : parent(p) {}
    WeightBinder parent;
    std::string name;
    int64_t count = 0;
    ModuleContext ctx;
    Build build;
    std::vector<Block> blocks;  // resident mode
    std::unique_ptr<BlockStream> stream;  // last: destroyed (joined) before what it reads
    std::string prefix(int64_t i) const { return parent.path(name + "." + std::to_string(i) + "."); }
  };
  std::shared_ptr<State> s_;
};

}  // namespace qdit::nn
