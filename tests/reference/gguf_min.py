"""Minimal, independent GGUF v2/v3 reader plus dequantizers (NumPy only).

Written from the format description (docs/BITNET_FORMATS.md sections 1-2 and
the public GGUF layout), not from the engine's C++ sources.

Conventions
-----------
* GGUF dims are ne = [ne0, ne1, ...] with ne0 contiguous.  Arrays returned
  here are NumPy row-major with the dims reversed: a [ne0=K, ne1=M] weight
  comes back as shape (M, K), i.e. (out_features, in_features).
* Float tensors dequantize to float64.
* Ternary tensors (I2_S, TQ1_0, TQ2_0) are exposed as integer codes in
  {-1, 0, +1} (int8, shape (M, K)) plus their scales:
    - I2_S : one float32 per-tensor scale           -> TernaryWeight.scale (float)
    - TQ*_0: one fp16 d per 256-element block        -> TernaryWeight.block_d
             shape (M, K // 256), float64 (exact fp16 values)
"""
import mmap
import struct
import sys

import numpy as np

# ---------------------------------------------------------------- metadata --
GGUF_MAGIC = b"GGUF"
# value type id -> (name, struct format or None)
_VT_SCALARS = {
    0: ("u8", "<B"), 1: ("i8", "<b"), 2: ("u16", "<H"), 3: ("i16", "<h"),
    4: ("u32", "<I"), 5: ("i32", "<i"), 6: ("f32", "<f"), 7: ("bool", "<?"),
    10: ("u64", "<Q"), 11: ("i64", "<q"), 12: ("f64", "<d"),
}
_VT_NP = {0: "<u1", 1: "<i1", 2: "<u2", 3: "<i2", 4: "<u4", 5: "<i4",
          6: "<f4", 7: "<u1", 10: "<u8", 11: "<i8", 12: "<f8"}
VT_STRING, VT_ARRAY = 8, 9

# ------------------------------------------------------------- tensor types --
# ggml type id -> (name, block size in elements, bytes per block)
GGML_TYPES = {
    0: ("F32", 1, 4), 1: ("F16", 1, 2), 2: ("Q4_0", 32, 18), 3: ("Q4_1", 32, 20),
    6: ("Q5_0", 32, 22), 7: ("Q5_1", 32, 24), 8: ("Q8_0", 32, 34), 9: ("Q8_1", 32, 36),
    10: ("Q2_K", 256, 84), 11: ("Q3_K", 256, 110), 12: ("Q4_K", 256, 144),
    13: ("Q5_K", 256, 176), 14: ("Q6_K", 256, 210), 15: ("Q8_K", 256, 292),
    24: ("I8", 1, 1), 25: ("I16", 1, 2), 26: ("I32", 1, 4), 27: ("I64", 1, 8),
    28: ("F64", 1, 8), 30: ("BF16", 1, 2), 34: ("TQ1_0", 256, 54), 35: ("TQ2_0", 256, 66),
}
I2S_ID = 36
# id 36 is I2_S in every architecture bitnet.cpp writes (its Falcon3 files are arch llama); mainline ggml
# retired the id (IQ4_NL_4_4, a load-time repacking never stored in files).
TERNARY_TYPES = ("I2_S", "TQ1_0", "TQ2_0")
FLOAT_TYPES = ("F32", "F16", "BF16", "Q8_0", "F64")


class GGUFError(Exception):
    pass


class TensorInfo:
    def __init__(self, name, ne, type_id, offset):
        self.name, self.ne, self.type_id, self.offset = name, tuple(ne), type_id, offset
        self.type_name = "?"
        self.nbytes = 0
        self.data_start = 0  # absolute file offset, filled in by GGUFFile

    @property
    def n_elements(self):
        return int(np.prod(self.ne, dtype=np.int64)) if self.ne else 1

    @property
    def np_shape(self):  # reversed dims, row-major
        return tuple(reversed(self.ne))

    def __repr__(self):
        return f"TensorInfo({self.name}, ne={list(self.ne)}, {self.type_name}, off={self.offset})"


class TernaryWeight:
    """Integer ternary matrix + scales.  codes: int8 (M, K) in {-1,0,1}."""

    def __init__(self, codes, type_name, scale=None, block_d=None, block=256):
        self.codes, self.type_name = codes, type_name
        self.scale = scale        # float (I2_S per-tensor) or None
        self.block_d = block_d    # float64 (M, K//block) (TQ*) or None
        self.block = block

    def dense(self):
        """float64 (M, K) dequantized weights."""
        c = self.codes.astype(np.float64)
        if self.block_d is None:
            return c * self.scale
        M, K = c.shape
        return (c.reshape(M, K // self.block, self.block) * self.block_d[:, :, None]).reshape(M, K)


class GGUFFile:
    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:
            self._mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self.buf = memoryview(self._mm)
        self._pos = 0
        self.metadata, self.metadata_types = {}, {}
        self.tensors = {}       # name -> TensorInfo (insertion order = file order)
        self._parse()

    # ---- low-level readers (little-endian only) ----
    def _take(self, n):
        if self._pos + n > len(self.buf):
            raise GGUFError(f"truncated file at byte {self._pos} (+{n})")
        b = self.buf[self._pos:self._pos + n]
        self._pos += n
        return b

    def _scalar(self, fmt):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def _string(self):
        n = self._scalar("<Q")
        return bytes(self._take(n)).decode("utf-8", errors="surrogateescape")

    def _value(self, vt):
        if vt in _VT_SCALARS:
            return self._scalar(_VT_SCALARS[vt][1])
        if vt == VT_STRING:
            return self._string()
        if vt == VT_ARRAY:
            et, n = self._scalar("<I"), self._scalar("<Q")
            if et in _VT_NP:  # numeric array: one frombuffer
                dt = np.dtype(_VT_NP[et])
                a = np.frombuffer(self._take(n * dt.itemsize), dtype=dt).copy()
                return a.astype(bool) if et == 7 else a
            return [self._value(et) for _ in range(n)]  # strings / nested arrays
        raise GGUFError(f"unknown metadata value type {vt} at byte {self._pos}")

    def _parse(self):
        if bytes(self._take(4)) != GGUF_MAGIC:
            raise GGUFError("not a GGUF file (bad magic)")
        self.version = self._scalar("<I")
        if self.version not in (2, 3):
            raise GGUFError(f"unsupported GGUF version {self.version} (need 2 or 3)")
        n_tensors, n_kv = self._scalar("<Q"), self._scalar("<Q")
        for _ in range(n_kv):
            key = self._string()
            vt = self._scalar("<I")
            if key in self.metadata:
                raise GGUFError(f"duplicate metadata key {key}")
            self.metadata[key], self.metadata_types[key] = self._value(vt), vt
        self.arch = self.metadata.get("general.architecture", "")
        for _ in range(n_tensors):
            name = self._string()
            nd = self._scalar("<I")
            ne = [self._scalar("<Q") for _ in range(nd)]
            tid, off = self._scalar("<I"), self._scalar("<Q")
            if name in self.tensors:
                raise GGUFError(f"duplicate tensor {name}")
            self.tensors[name] = TensorInfo(name, ne, tid, off)
        self.alignment = int(self.metadata.get("general.alignment", 32))
        if self.alignment <= 0 or self.alignment & (self.alignment - 1):
            raise GGUFError(f"bad general.alignment {self.alignment}")
        a = self.alignment
        self.data_offset = (self._pos + a - 1) // a * a
        for t in self.tensors.values():
            t.type_name, t.nbytes = self._type_and_size(t)
            if t.offset % a:
                raise GGUFError(f"{t.name}: offset {t.offset} not aligned to {a}")
            t.data_start = self.data_offset + t.offset
            if t.nbytes is not None and t.data_start + t.nbytes > len(self.buf):
                raise GGUFError(f"{t.name}: data runs past end of file")

    def _type_and_size(self, t):
        n = t.n_elements
        if t.type_id == I2S_ID:
            if n % 4:
                raise GGUFError(f"{t.name}: I2_S element count {n} not a multiple of 4")
            return "I2_S", n // 4 + 32
        if t.type_id not in GGML_TYPES:
            return f"type{t.type_id}", None  # unknown: readable only if unused
        name, blk, bsz = GGML_TYPES[t.type_id]
        if t.ne and t.ne[0] % blk:
            raise GGUFError(f"{t.name}: ne0={t.ne[0]} not a multiple of {name} block {blk}")
        return name, n // blk * bsz

    # ---- tensor access ----
    def info(self, name):
        if name not in self.tensors:
            raise KeyError(f"tensor {name} not in {self.path}")
        return self.tensors[name]

    def raw(self, name):
        """uint8 view of the tensor's bytes."""
        t = self.info(name)
        if t.nbytes is None:
            raise GGUFError(f"{name}: unsupported tensor type id {t.type_id}")
        return np.frombuffer(self.buf[t.data_start:t.data_start + t.nbytes], dtype=np.uint8)

    def is_ternary(self, name):
        return self.info(name).type_name in TERNARY_TYPES

    def ternary(self, name):
        """TernaryWeight for an I2_S / TQ1_0 / TQ2_0 tensor (codes shape = np_shape)."""
        t = self.info(name)
        raw, n = self.raw(name), t.n_elements
        if t.type_name == "I2_S":
            codes = decode_i2s(raw[: n // 4], n)
            scale = float(np.frombuffer(raw[n // 4: n // 4 + 4].tobytes(), "<f4")[0])
            return TernaryWeight(codes.reshape(t.np_shape), "I2_S", scale=scale)
        if t.type_name in ("TQ1_0", "TQ2_0"):
            dec = decode_tq1_0 if t.type_name == "TQ1_0" else decode_tq2_0
            codes, d = dec(raw, n)
            shp = t.np_shape
            return TernaryWeight(codes.reshape(shp), t.type_name,
                                 block_d=d.reshape(shp[:-1] + (shp[-1] // 256,)))
        raise GGUFError(f"{name}: {t.type_name} is not a ternary type")

    def dequant(self, name, rows=None):
        """float64 array of shape np_shape; rows=(r0, r1) slices the outermost
        2-D row range of a matrix (for memory-friendly LM heads)."""
        t = self.info(name)
        if t.type_name in TERNARY_TYPES:
            if rows is not None:
                return self.ternary(name).dense()[rows[0]:rows[1]]
            return self.ternary(name).dense().reshape(t.np_shape)
        raw = self.raw(name)
        shp = t.np_shape
        if rows is not None:  # row-separable float types only
            rb = t.nbytes // max(1, int(np.prod(shp[:-1])))
            raw = raw[rows[0] * rb: rows[1] * rb]
            shp = (rows[1] - rows[0],) + shp[1:]
        n = int(np.prod(shp))
        return dequant_float(t.type_name, raw, n).reshape(shp)


# ------------------------------------------------------------ dequantizers --
def fp16_to_f64(raw_u8):
    return np.frombuffer(raw_u8.tobytes(), dtype="<f2").astype(np.float64)


def dequant_float(type_name, raw, n):
    """raw uint8 bytes -> float64 vector of n elements."""
    if type_name == "F32":
        return np.frombuffer(raw.tobytes(), "<f4").astype(np.float64)
    if type_name == "F64":
        return np.frombuffer(raw.tobytes(), "<f8").copy()
    if type_name == "F16":
        return fp16_to_f64(raw)
    if type_name == "BF16":  # bf16 = top 16 bits of a float32
        u = np.frombuffer(raw.tobytes(), "<u2").astype(np.uint32) << 16
        return u.view(np.float32).astype(np.float64)
    if type_name == "Q8_0":  # block: fp16 d, int8 qs[32]
        b = raw.reshape(-1, 34)
        d = fp16_to_f64(b[:, :2].copy())
        q = b[:, 2:].view(np.int8).astype(np.float64)
        return (q * d[:, None]).reshape(n)
    raise GGUFError(f"no dequantizer for {type_name}")


def decode_i2s(code_bytes, n):
    """I2_S codes -> int8 {-1,0,1}, length n.  128-element / 32-byte blocks;
    element j of a block is in byte j%32, bits (6 - 2*(j//32)); 0,1,2 = -1,0,+1."""
    if n % 128:
        raise GGUFError(f"I2_S element count {n} not a multiple of 128")
    b = code_bytes.reshape(-1, 32)                     # (n_blocks, 32)
    groups = [(b >> (6 - 2 * g)) & 3 for g in range(4)]
    c = np.stack(groups, axis=1).reshape(n)            # (n_blocks, 4, 32) -> flat
    if np.any(c == 3):
        raise GGUFError("I2_S: invalid code 3")
    return c.astype(np.int8) - 1


def decode_tq2_0(raw, n):
    """TQ2_0 -> (int8 codes (n,), float64 d (n//256,)).  Block = qs[64], fp16 d.
    qs byte b: h=b//32, m=b%32; element h*128 + k*32 + m = (qs[b] >> 2k) & 3."""
    blk = raw.reshape(-1, 66)
    qs = blk[:, :64].reshape(-1, 2, 32)                # (nb, h, m)
    c = np.stack([(qs >> (2 * k)) & 3 for k in range(4)], axis=2)  # (nb, h, k, m)
    c = c.reshape(n)
    if np.any(c == 3):
        raise GGUFError("TQ2_0: invalid code 3")
    return c.astype(np.int8) - 1, fp16_to_f64(blk[:, 64:66].copy())


_POW3 = (1, 3, 9, 27, 81)


def _trits(b, count):
    """bytes (any shape) -> (..., count) trits; trit k = ((b*3^k mod 256)*3) >> 8."""
    b = b.astype(np.uint16)
    return np.stack([(((b * _POW3[k]) & 0xFF) * 3) >> 8 for k in range(count)], axis=-2)


def decode_tq1_0(raw, n):
    """TQ1_0 -> (int8 codes, float64 d).  Block = qs[48], qh[4], fp16 d.
    qs[0:32]  byte m, trit k -> element k*32 + m        (0..159)
    qs[32:48] byte m, trit k -> element 160 + k*16 + m  (160..239)
    qh[0:4]   byte j, trit k -> element 240 + k*4 + j   (240..255)"""
    blk = raw.reshape(-1, 54)
    nb = blk.shape[0]
    a = _trits(blk[:, 0:32], 5).reshape(nb, 160)       # (nb, k, m) flattened
    b = _trits(blk[:, 32:48], 5).reshape(nb, 80)
    c = _trits(blk[:, 48:52], 4).reshape(nb, 16)
    codes = np.concatenate([a, b, c], axis=1).reshape(n)
    return codes.astype(np.int8) - 1, fp16_to_f64(blk[:, 52:54].copy())


def _main(argv):
    """Debug helper: python3 gguf_min.py FILE  -> prints metadata and tensors."""
    g = GGUFFile(argv[1])
    print(f"GGUF v{g.version} arch={g.arch} alignment={g.alignment} data@{g.data_offset}")
    for k, v in g.metadata.items():
        s = repr(v)
        print(f"  {k} = {s[:100]}{'...' if len(s) > 100 else ''}")
    for t in g.tensors.values():
        print(f"  {t.name:32s} ne={list(t.ne)} {t.type_name} bytes={t.nbytes}")


if __name__ == "__main__":
    _main(sys.argv)
