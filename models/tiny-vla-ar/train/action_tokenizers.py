"""Reference action tokenizers of the autoregressive family, in NumPy/SciPy.

The training recipe tokenizes its demonstrations with these, and the TypeScript tokenizers in
src/policy/autoregressive/ are tested against their output (test/fixtures/action-tokenizers/).

- UniformBins: OpenVLA's ActionTokenizer (prismatic/vla/action_tokenizer.py): clip to [-1, 1],
  numpy.digitize against linspace(-1, 1, bins), decode to bin centres. Local id = bins - digitize.
- Fast: pi0-FAST's UniversalActionProcessor: scipy.fft.dct(axis=0, norm="ortho") over time,
  numpy.around(coefficients * scale), flattened frequency-major, shifted by min_token, then BPE.
  The BPE here works on the integer symbols (FAST's published one runs Hugging Face's byte-level
  BPE over chr(symbol)); training merges the most frequent adjacent pair (ties: the smallest pair),
  encoding applies merges lowest rank first, each to all non-overlapping occurrences left to right.
"""

from collections import Counter

import numpy as np
from scipy.fft import dct, idct


class UniformBins:
    def __init__(self, horizon, action_dim, bins=256):
        self.horizon, self.action_dim, self.bins = horizon, action_dim, bins
        self.edges = np.linspace(-1.0, 1.0, bins)
        self.centres = (self.edges[:-1] + self.edges[1:]) / 2.0

    def encode(self, chunk):
        x = np.clip(np.asarray(chunk, dtype=np.float64).reshape(-1), -1.0, 1.0)
        return (self.bins - np.digitize(x, self.edges)).astype(int).tolist()

    def decode(self, tokens):
        d = self.bins - np.asarray(tokens)
        return self.centres[np.clip(d - 1, 0, len(self.centres) - 1)]


def merge_pair(seq, pair, new):
    out, i = [], 0
    while i < len(seq):
        if i + 1 < len(seq) and seq[i] == pair[0] and seq[i + 1] == pair[1]:
            out.append(new)
            i += 2
        else:
            out.append(seq[i])
            i += 1
    return out


class Fast:
    def __init__(self, horizon, action_dim, scale, min_token, alphabet, merges):
        self.horizon, self.action_dim, self.scale = horizon, action_dim, scale
        self.min_token, self.alphabet, self.merges = min_token, alphabet, [tuple(m) for m in merges]
        self.rank = {m: i for i, m in enumerate(self.merges)}
        self.end = alphabet + len(self.merges)

    @staticmethod
    def coefficients(chunks, horizon, action_dim, scale):
        x = np.clip(np.asarray(chunks, dtype=np.float64).reshape(-1, horizon, action_dim), -1.0, 1.0)
        return np.around(dct(x, axis=1, norm="ortho") * scale).astype(int)

    @classmethod
    def train(cls, chunks, horizon, action_dim, scale=10.0, vocab=256):
        coefficients = cls.coefficients(chunks, horizon, action_dim, scale)
        min_token = int(coefficients.min())
        alphabet = int(coefficients.max()) - min_token + 1
        seqs = [list((c.reshape(-1) - min_token)) for c in coefficients]
        merges = []
        while alphabet + len(merges) < vocab:
            counts = Counter()
            for s in seqs:
                counts.update(zip(s, s[1:]))
            if not counts:
                break
            top = max(counts.values())
            if top < 2:
                break
            pair = min(p for p, c in counts.items() if c == top)
            new = alphabet + len(merges)
            merges.append(pair)
            seqs = [merge_pair(s, pair, new) for s in seqs]
        return cls(horizon, action_dim, scale, min_token, alphabet, merges)

    def symbols(self, chunk):
        c = self.coefficients(chunk, self.horizon, self.action_dim, self.scale).reshape(-1)
        return np.clip(c - self.min_token, 0, self.alphabet - 1).astype(int).tolist()

    def encode(self, chunk):
        tokens = self.symbols(chunk)
        while True:
            ranks = [self.rank.get(p) for p in zip(tokens, tokens[1:])]
            ranks = [r for r in ranks if r is not None]
            if not ranks:
                return tokens + [self.end]
            best = min(ranks)
            tokens = merge_pair(tokens, self.merges[best], self.alphabet + best)

    def expand(self, token):
        if token < self.alphabet:
            return [token]
        left, right = self.merges[token - self.alphabet]
        return self.expand(left) + self.expand(right)

    def decode(self, tokens):
        n = self.horizon * self.action_dim
        body = tokens[: tokens.index(self.end)] if self.end in tokens else tokens
        symbols = [s for t in body for s in self.expand(t)][:n]
        c = np.zeros(n)
        c[: len(symbols)] = (np.asarray(symbols) + self.min_token) / self.scale
        return np.clip(idct(c.reshape(self.horizon, self.action_dim), axis=0, norm="ortho"), -1, 1)

    def spec(self):
        return {
            "kind": "fast",
            "horizon": self.horizon,
            "action_dim": self.action_dim,
            "scale": self.scale,
            "min_token": self.min_token,
            "alphabet": self.alphabet,
            "merges": [list(map(int, m)) for m in self.merges],
        }
