#include "bitnet/text/hash_index.h"

#include <algorithm>
#include <bit>
#include <functional>

namespace bitnet {
namespace {

uint32_t tag(size_t h) {
  return static_cast<uint32_t>(static_cast<uint64_t>(h) >> 32);
}

}  // namespace

void TextIndex::build(const std::vector<std::string>& texts) {
  texts_ = &texts;
  const size_t capacity =
      std::bit_ceil(std::max<size_t>(16, texts.size() + texts.size() / 2));  // load <= 2/3
  slots_.assign(capacity, Slot{0, -1});
  mask_ = capacity - 1;
  for (size_t id = 0; id < texts.size(); ++id) {
    const size_t h = std::hash<std::string_view>{}(texts[id]);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (s.id < 0) {
        s = {tag(h), static_cast<int32_t>(id)};
        break;
      }
      if (s.hash == tag(h) && texts[static_cast<size_t>(s.id)] == texts[id]) {
        s.id = static_cast<int32_t>(id);  // duplicate text: last wins
        break;
      }
    }
  }
}

int32_t TextIndex::find(std::string_view text) const {
  if (slots_.empty()) return -1;
  const size_t h = std::hash<std::string_view>{}(text);
  for (size_t i = h & mask_;; i = (i + 1) & mask_) {
    const Slot& s = slots_[i];
    if (s.id < 0) return -1;
    if (s.hash == tag(h) && (*texts_)[static_cast<size_t>(s.id)] == text) return s.id;
  }
}

PairIndex::PairIndex(size_t expected) {
  const size_t capacity = std::bit_ceil(std::max<size_t>(16, expected + expected / 2));  // load <= 2/3
  slots_.assign(capacity, Slot{kEmpty, {}});
  shift_ = 64u - static_cast<unsigned>(std::countr_zero(capacity));
}

void PairIndex::grow() {
  std::vector<Slot> old = std::move(slots_);
  slots_.assign(old.size() * 2, Slot{kEmpty, {}});
  --shift_;
  const size_t mask = slots_.size() - 1;
  for (const Slot& s : old) {
    if (s.key == kEmpty) continue;
    size_t i = slot_of(s.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

void PairIndex::insert(int32_t left, int32_t right, Value v) {
  if ((size_ + 1) * 4 > slots_.size() * 3) grow();  // keep load <= 3/4
  const uint64_t k = key(left, right);
  const size_t mask = slots_.size() - 1;
  for (size_t i = slot_of(k);; i = (i + 1) & mask) {
    Slot& s = slots_[i];
    if (s.key == k) return;
    if (s.key == kEmpty) {
      s = {k, v};
      ++size_;
      return;
    }
  }
}

const PairIndex::Value* PairIndex::find(int32_t left, int32_t right) const {
  const uint64_t k = key(left, right);
  const size_t mask = slots_.size() - 1;
  for (size_t i = slot_of(k);; i = (i + 1) & mask) {
    const Slot& s = slots_[i];
    if (s.key == k) return &s.value;
    if (s.key == kEmpty) return nullptr;
  }
}

}  // namespace bitnet
