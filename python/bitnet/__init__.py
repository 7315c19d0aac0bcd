"""bitnet from Python: the C API (include/bitnet/bitnet.h, libbitnet.so) through ctypes, no compiled extension.

    import bitnet
    with bitnet.Model("model.gguf") as m:          # no path: $BITNET_MODEL, else the installed default model
        ids = m.tokenize("It is a truth")           # [bos, ...]
        m.eval(ids)
        logits = m.logits()                         # numpy.float32 array of n_vocab
        for piece in m.generate("It is a truth", max_tokens=32, temperature=0):
            print(piece, end="", flush=True)

libbitnet.so is found at $BITNET_LIBRARY, else beside this package as installed (<prefix>/lib), else in a
source tree's build/release, else on the system's library path. Errors are BitnetError, carrying the C
status and the library's message. A Model is one model with one context (KV cache); use it from one thread.
"""

import ctypes
import os
import queue
import threading
from dataclasses import dataclass

__all__ = ["Model", "ModelInfo", "BitnetError", "library_path", "api_version"]

_SONAME = "libbitnet.so.0.2"
_HERE = os.path.dirname(os.path.abspath(__file__))

# Status codes of bitnet.h.
OK, ERR_INVALID_ARGUMENT, ERR_LOAD, ERR_CONTEXT_FULL, ERR_BUFFER_TOO_SMALL, ERR_CANCELLED, ERR_INTERNAL = range(7)
_STATUS_NAMES = {1: "invalid_argument", 2: "load", 3: "context_full", 4: "buffer_too_small", 5: "cancelled",
                 6: "internal"}


class BitnetError(RuntimeError):
    """A failed call into libbitnet: .status is the C status (bitnet.ERR_*), .code its name."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status
        self.code = _STATUS_NAMES.get(status, str(status))


class _Params(ctypes.Structure):
    _fields_ = [("n_threads", ctypes.c_int32), ("n_ctx", ctypes.c_int32), ("lm_head", ctypes.c_int32)]


# bitnet_lm_head: the LM head as stored ("f16") or quantized at load.
_LM_HEADS = {"f16": 0, "q8": 1, "q6": 2, "q4": 3, "auto": 4}


class _SampleParams(ctypes.Structure):
    _fields_ = [("temperature", ctypes.c_float), ("top_k", ctypes.c_int32), ("top_p", ctypes.c_float),
                ("min_p", ctypes.c_float), ("repeat_penalty", ctypes.c_float), ("seed", ctypes.c_uint64)]


class _ModelInfo(ctypes.Structure):
    _fields_ = [("architecture", ctypes.c_char * 64)] + [
        (name, ctypes.c_int32) for name in
        ("n_vocab", "n_ctx_train", "n_layers", "dim", "n_heads", "n_kv_heads", "bos", "eos")]


_PIECE_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)


@dataclass(frozen=True)
class ModelInfo:
    architecture: str
    n_vocab: int
    n_ctx_train: int
    n_layers: int
    dim: int
    n_heads: int
    n_kv_heads: int
    bos: int  # -1: none
    eos: int  # -1: none


def _installed():
    """The paths recorded by `cmake --install` (_install.py), or None in a source tree."""
    try:
        from . import _install
    except ImportError:
        return None
    return _install


def _candidates():
    env = os.environ.get("BITNET_LIBRARY")
    if env:
        return [env]  # asked for: nothing else is tried
    found = []
    inst = _installed()
    if inst is not None:
        found.append(os.path.normpath(os.path.join(_HERE, inst.LIBDIR, _SONAME)))
    found.append(os.path.normpath(os.path.join(_HERE, "..", "..", "build", "release", "src", "bitnet", "api", _SONAME)))
    found.append(_SONAME)  # the system's library path (ldconfig, LD_LIBRARY_PATH)
    return found


_lib = None
_lib_path = None
_lib_lock = threading.Lock()


def _load():
    global _lib, _lib_path
    with _lib_lock:
        if _lib is not None:
            return _lib
        errors = []
        for path in _candidates():
            if os.sep in path and not os.path.exists(path):
                errors.append(f"{path}: no such file")
                continue
            try:
                lib = ctypes.CDLL(path)
            except OSError as e:
                errors.append(f"{path}: {e}")
                continue
            _declare(lib)
            _lib, _lib_path = lib, path
            return lib
        raise BitnetError(ERR_LOAD, "libbitnet.so not found (set BITNET_LIBRARY to its path); tried: " +
                          "; ".join(errors))


def _declare(lib):
    c = ctypes
    p_engine = c.c_void_p
    sig = {
        "bitnet_api_version": (c.c_char_p, []),
        "bitnet_last_error": (c.c_char_p, []),
        "bitnet_default_params": (_Params, []),
        "bitnet_default_sample_params": (_SampleParams, []),
        "bitnet_engine_load": (c.c_int, [c.c_char_p, c.POINTER(_Params), c.POINTER(p_engine)]),
        "bitnet_engine_free": (None, [p_engine]),
        "bitnet_model_get_info": (c.c_int, [p_engine, c.POINTER(_ModelInfo)]),
        "bitnet_n_ctx": (c.c_int32, [p_engine]),
        "bitnet_n_past": (c.c_int32, [p_engine]),
        "bitnet_tokenize": (c.c_int, [p_engine, c.c_char_p, c.c_size_t, c.c_int, c.c_int, c.POINTER(c.c_int32),
                                      c.c_size_t, c.POINTER(c.c_size_t)]),
        "bitnet_detokenize": (c.c_int, [p_engine, c.POINTER(c.c_int32), c.c_size_t, c.c_char_p, c.c_size_t,
                                        c.POINTER(c.c_size_t)]),
        "bitnet_eval": (c.c_int, [p_engine, c.POINTER(c.c_int32), c.c_size_t]),
        "bitnet_logits": (c.POINTER(c.c_float), [p_engine]),
        "bitnet_reset": (c.c_int, [p_engine, c.c_int32]),
        "bitnet_sample": (c.c_int, [p_engine, c.POINTER(_SampleParams), c.POINTER(c.c_int32)]),
        "bitnet_generate": (c.c_int, [p_engine, c.c_char_p, c.c_int32, c.POINTER(_SampleParams), _PIECE_CALLBACK,
                                      c.c_void_p]),
    }
    for name, (restype, argtypes) in sig.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes


def library_path():
    """The libbitnet.so this module uses (loading it if not yet loaded)."""
    _load()
    return _lib_path


def api_version():
    """The C API's version, "0.2"."""
    return _load().bitnet_api_version().decode()


def _check(status):
    if status != OK:
        raise BitnetError(status, _lib.bitnet_last_error().decode("utf-8", "replace"))


def _default_model():
    env = os.environ.get("BITNET_MODEL")
    if env:
        return env
    inst = _installed()
    if inst is not None:
        return os.path.normpath(os.path.join(_HERE, inst.DEFAULT_MODEL))
    return os.path.normpath(os.path.join(_HERE, "..", "..", "models", "bitnet-austen-5m.gguf"))


def _ids_array(ids):
    ids = [int(i) for i in ids]
    return (ctypes.c_int32 * max(1, len(ids)))(*ids), len(ids)


class Model:
    """One model and one context (KV cache). Close it (or use `with`) to free it at once."""

    def __init__(self, path=None, *, n_threads=0, n_ctx=0, lm_head="f16", lm_head_q8=False):
        """lm_head: "f16" (as stored), "q8", "q6" or "q4" (quantized at load: fewer bytes per generated token,
        slightly different logits), "auto" (what `bitnet run` uses: q6 for a float head). lm_head_q8=True is the
        older spelling of lm_head="q8"."""
        lib = _load()
        self._h = None
        self._busy = False  # a generate() iterator is running on this model
        if lm_head_q8:
            lm_head = "q8"
        if lm_head not in _LM_HEADS:
            raise ValueError(f"lm_head {lm_head!r} is not one of {', '.join(_LM_HEADS)}")
        params = _Params(int(n_threads), int(n_ctx), _LM_HEADS[lm_head])
        self.path = os.fspath(path) if path is not None else _default_model()
        h = ctypes.c_void_p()
        _check(lib.bitnet_engine_load(os.fsencode(self.path), ctypes.byref(params), ctypes.byref(h)))
        self._h = h
        info = _ModelInfo()
        _check(lib.bitnet_model_get_info(self._h, ctypes.byref(info)))
        self.info = ModelInfo(info.architecture.decode("utf-8", "replace"), info.n_vocab, info.n_ctx_train,
                              info.n_layers, info.dim, info.n_heads, info.n_kv_heads, info.bos, info.eos)

    # Lifetime.
    def close(self):
        if self._h is not None:
            if self._busy:
                raise RuntimeError("close(): a generate() iterator is still running on this model")
            _lib.bitnet_engine_free(self._h)
            self._h = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        if getattr(self, "_h", None) is not None and not self._busy:
            _lib.bitnet_engine_free(self._h)
            self._h = None

    def _handle(self, mutates=True):
        if self._h is None:
            raise BitnetError(ERR_INVALID_ARGUMENT, "the model is closed")
        if mutates and self._busy:
            raise RuntimeError("a generate() iterator is still running on this model; finish or close it first")
        return self._h

    # Context.
    @property
    def n_ctx(self):
        return _lib.bitnet_n_ctx(self._handle(False))

    @property
    def n_past(self):
        return _lib.bitnet_n_past(self._handle(False))

    # Text.
    def tokenize(self, text, add_bos=True, special=False):
        """Token ids of text (str or bytes); a BOS first when add_bos and the model has one."""
        data = text.encode("utf-8") if isinstance(text, str) else bytes(text)
        h = self._handle(False)
        cap = len(data) + 2
        while True:
            buf = (ctypes.c_int32 * cap)()
            n = ctypes.c_size_t()
            st = _lib.bitnet_tokenize(h, data, len(data), int(add_bos), int(special), buf, cap, ctypes.byref(n))
            if st == ERR_BUFFER_TOO_SMALL:
                cap = n.value
                continue
            _check(st)
            return buf[:n.value]

    def detokenize_bytes(self, ids):
        """The bytes of ids (a token's bytes may be part of a UTF-8 character)."""
        arr, n_ids = _ids_array(ids)
        h = self._handle(False)
        cap = 16 * n_ids + 16
        while True:
            buf = ctypes.create_string_buffer(cap)
            n = ctypes.c_size_t()
            st = _lib.bitnet_detokenize(h, arr, n_ids, buf, cap, ctypes.byref(n))
            if st == ERR_BUFFER_TOO_SMALL:
                cap = n.value + 1
                continue
            _check(st)
            return buf.raw[:n.value]

    def detokenize(self, ids):
        """The text of ids (an incomplete UTF-8 character at either end becomes U+FFFD)."""
        return self.detokenize_bytes(ids).decode("utf-8", "replace")

    # Evaluation.
    def eval(self, ids):
        """Appends ids to the context and computes the logits of the last one."""
        arr, n = _ids_array(ids)
        _check(_lib.bitnet_eval(self._handle(), arr, n))

    def logits(self):
        """The last evaluated token's logits: a new numpy.float32 array of n_vocab."""
        import numpy as np
        ptr = _lib.bitnet_logits(self._handle(False))
        if not ptr:
            raise BitnetError(ERR_INVALID_ARGUMENT, "no logits: nothing has been evaluated since the last reset")
        return np.ctypeslib.as_array(ptr, shape=(self.info.n_vocab,)).copy()

    def reset(self, n=0):
        """Keeps the first n tokens of the context."""
        _check(_lib.bitnet_reset(self._handle(), int(n)))

    @staticmethod
    def _sample_params(temperature, top_k, top_p, min_p, repeat_penalty, seed):
        return _SampleParams(float(temperature), int(top_k), float(top_p), float(min_p), float(repeat_penalty),
                             0xFFFFFFFF if seed is None else int(seed) & 0xFFFFFFFFFFFFFFFF)

    def sample(self, *, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0, seed=None):
        """A token drawn from logits() (temperature <= 0: the most likely one); seed None: random."""
        p = self._sample_params(temperature, top_k, top_p, min_p, repeat_penalty, seed)
        out = ctypes.c_int32()
        _check(_lib.bitnet_sample(self._handle(), ctypes.byref(p), ctypes.byref(out)))
        return out.value

    def generate(self, prompt, max_tokens=-1, *, temperature=0.8, top_k=40, top_p=0.95, min_p=0.05,
                 repeat_penalty=1.0, seed=None):
        """An iterator of the text pieces continuing prompt, as they become final (whole characters).

        At most max_tokens tokens (-1: until the end of generation or a full context). Stopping the
        iteration early (break, close()) cancels the generation at the next token. The prompt is tokenized
        with BOS as the model wants; a prefix already in the context is reused.
        """
        h = self._handle()
        params = self._sample_params(temperature, top_k, top_p, min_p, repeat_penalty, seed)
        data = prompt.encode("utf-8") if isinstance(prompt, str) else bytes(prompt)
        return self._generate(h, data, int(max_tokens), params)

    def _generate(self, h, data, max_tokens, params):
        # bitnet_generate calls back with each piece; it runs on a worker thread and hands pieces over through
        # a small queue, so the engine stays at most a few pieces ahead of the consumer.
        pieces = queue.Queue(maxsize=4)
        stop = threading.Event()
        done = object()
        outcome = {}

        def on_piece(ptr, n, _user):
            piece = ctypes.string_at(ptr, n).decode("utf-8", "replace")
            while not stop.is_set():
                try:
                    pieces.put(piece, timeout=0.05)
                    return 1
                except queue.Full:
                    pass
            return 0

        callback = _PIECE_CALLBACK(on_piece)
        if self._busy:
            raise RuntimeError("another generate() iterator is running on this model; finish or close it first")

        def work():
            st = _lib.bitnet_generate(h, data, max_tokens, ctypes.byref(params), callback, None)
            outcome["status"] = st
            outcome["message"] = _lib.bitnet_last_error().decode("utf-8", "replace") if st != OK else ""
            pieces.put(done)

        self._busy = True
        worker = threading.Thread(target=work, name="bitnet-generate", daemon=True)
        worker.start()
        try:
            while True:
                piece = pieces.get()
                if piece is done:
                    break
                yield piece
        finally:
            stop.set()
            while worker.is_alive():  # let a pending put through
                try:
                    pieces.get_nowait()
                except queue.Empty:
                    pass
                worker.join(0.01)
            self._busy = False
        if outcome["status"] != OK:
            raise BitnetError(outcome["status"], outcome["message"])

    def __repr__(self):
        state = "closed" if self._h is None else f"{self.n_past}/{self.n_ctx} tokens"
        return f"<bitnet.Model {self.path!r} {self.info.architecture} {state}>"
