// WeightSource over a GGUF file or safetensors shards, and WeightReader's checked reads.
#include <map>

#include "anvil/core/error.h"
#include "anvil/io/gguf.h"
#include "anvil/io/safetensors.h"
#include "weights.h"

namespace anvil::model {

namespace {

class GgufWeightSource final : public WeightSource {
 public:
  explicit GgufWeightSource(std::shared_ptr<const io::GgufFile> file) : file_(std::move(file)) {}

  [[nodiscard]] std::optional<Tensor> find(const std::string& name) const override {
    if (file_->find_tensor(name) == nullptr) return std::nullopt;
    return file_->tensor(name);
  }
  [[nodiscard]] std::string describe() const override { return "GGUF '" + file_->path() + "'"; }

 private:
  std::shared_ptr<const io::GgufFile> file_;
};

class SafetensorsWeightSource final : public WeightSource {
 public:
  explicit SafetensorsWeightSource(std::vector<io::SafetensorsFile> shards) : shards_(std::move(shards)) {
    ANVIL_CHECK(!shards_.empty(), "safetensors weights: no files given");
    for (size_t shard = 0; shard < shards_.size(); ++shard) {
      for (const io::SafetensorsEntry& entry : shards_[shard].entries()) {
        const auto [at, inserted] = shard_of_.emplace(entry.name, shard);
        ANVIL_CHECK(inserted, "safetensors weights: tensor '", entry.name, "' is in both '", shards_[at->second].path(),
                    "' and '", shards_[shard].path(), "'");
      }
    }
  }

  [[nodiscard]] std::optional<Tensor> find(const std::string& name) const override {
    const auto at = shard_of_.find(name);
    if (at == shard_of_.end()) return std::nullopt;
    return shards_[at->second].tensor(name);
  }
  [[nodiscard]] std::string describe() const override {
    return "safetensors '" + shards_.front().path() + "'" +
           (shards_.size() > 1 ? " (+" + std::to_string(shards_.size() - 1) + " shards)" : "");
  }

 private:
  std::vector<io::SafetensorsFile> shards_;
  std::map<std::string, size_t> shard_of_;
};

}  // namespace

std::unique_ptr<WeightSource> gguf_weight_source(std::shared_ptr<const io::GgufFile> file) {
  return std::make_unique<GgufWeightSource>(std::move(file));
}

std::unique_ptr<WeightSource> safetensors_weight_source(std::vector<io::SafetensorsFile> shards) {
  return std::make_unique<SafetensorsWeightSource>(std::move(shards));
}

Tensor WeightReader::exact(const std::string& name, const Shape& shape) const {
  std::optional<Tensor> tensor = source_.find(name);
  ANVIL_CHECK(tensor.has_value(), source_.describe(), ": weight '", name, "' is missing");
  ANVIL_CHECK(tensor->shape() == shape, source_.describe(), ": weight '", name, "' has shape ",
              shape_string(tensor->shape()), ", expected ", shape_string(shape));
  return *tensor;
}

Tensor WeightReader::table(const std::string& name, int64_t rows, int64_t cols) const {
  Tensor tensor = exact(name, {rows, cols});
  const DTypeInfo& info = dtype_info(tensor.dtype());
  ANVIL_CHECK(info.is_float, source_.describe(), ": weight '", name, "' has dtype ", info.name,
              ", expected a float or quantized type");
  return tensor;
}

Tensor WeightReader::matrix(const std::string& name, int64_t rows, int64_t cols) const {
  Tensor tensor = table(name, rows, cols);
  const DType dtype = tensor.dtype();
  const bool plain = dtype == DType::F32 || dtype == DType::F16 || dtype == DType::BF16;
  ANVIL_CHECK(plain || dtype_info(dtype).is_quantized, source_.describe(), ": weight '", name, "' has dtype ",
              dtype_name(dtype), ", expected f32, f16, bf16 or a quantized type for a linear layer");
  return tensor;
}

Tensor WeightReader::vector(const std::string& name, int64_t length) const {
  const Tensor tensor = exact(name, {length});
  ANVIL_CHECK(dtype_info(tensor.dtype()).is_float, source_.describe(), ": weight '", name, "' has dtype ",
              dtype_name(tensor.dtype()), ", expected a float type");
  return tensor.to_dtype(DType::F32);
}

}  // namespace anvil::model

namespace anvil::model {

LayerWeights read_llama_layer(const WeightReader& reader, const ModelConfig& config, const std::string& prefix,
                              const LlamaLayerNames& names) {
  const int64_t c = config.hidden_size;
  const int64_t q_dim = config.num_heads * config.head_dim;
  const int64_t kv_dim = config.num_kv_heads * config.head_dim;
  const int64_t f = config.intermediate_size;
  LayerWeights layer;
  layer.attn_norm = reader.vector(prefix + names.attn_norm, c);
  layer.wq = reader.matrix(prefix + names.q, q_dim, c);
  layer.wk = reader.matrix(prefix + names.k, kv_dim, c);
  layer.wv = reader.matrix(prefix + names.v, kv_dim, c);
  layer.wo = reader.matrix(prefix + names.o, c, q_dim);
  if (config.qkv_bias) {
    layer.bq = reader.vector(prefix + names.q_bias, q_dim);
    layer.bk = reader.vector(prefix + names.k_bias, kv_dim);
    layer.bv = reader.vector(prefix + names.v_bias, kv_dim);
  }
  if (config.qk_norm) {
    layer.q_norm = reader.vector(prefix + names.q_norm, config.head_dim);
    layer.k_norm = reader.vector(prefix + names.k_norm, config.head_dim);
  }
  layer.ffn_norm = reader.vector(prefix + names.ffn_norm, c);
  layer.w_gate = reader.matrix(prefix + names.gate, f, c);
  layer.w_up = reader.matrix(prefix + names.up, f, c);
  layer.w_down = reader.matrix(prefix + names.down, c, f);
  return layer;
}

}  // namespace anvil::model
