#!/usr/bin/env python3
"""Train the punctuation-and-casing model on prepare.py's text and export it for the runtime.

    python recipes/punctuation/train.py DATA_DIR EXP_DIR [--minutes 25] [--threads 1]
    python recipes/punctuation/train.py DATA_DIR EXP_DIR --export asr/models/punctuation.onnx

A token classifier over words (asr/punctuation.py describes its inputs and outputs): word and
two-letter-suffix embeddings, two bidirectional GRU layers, a head for the mark after each word
and a head for its case. Training windows of 8-64 words are cut from the running text (70 % of
them start at a sentence start; ends fall anywhere, as a recogniser's segments do); 5 % of input
words are replaced by the unknown word so names never seen still get a guess from their suffix.
Checkpoints (EXP_DIR/last.pt, every eval) make a re-run resume; training stops at --steps or
after --minutes of this run. --export writes the ONNX graph (weights as float16, cast once at
load; the vocabulary and the card in its metadata), which runs on numpy + onnxruntime alone.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections import Counter

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))
from asr.punctuation import CASES, MARKS, N_SUFFIXES, Punctuator, Scores, label_words, suffix_id  # noqa: E402

MARK_ID = {m: i for i, m in enumerate(MARKS)}
CASE_ID = {c: i for i, c in enumerate(CASES)}


class Tagger(nn.Module):
    def __init__(self, vocab_size: int, emb: int = 64, suffix_emb: int = 16, hidden: int = 128, layers: int = 2):
        super().__init__()
        self.words = nn.Embedding(vocab_size, emb)
        self.suffixes = nn.Embedding(N_SUFFIXES, suffix_emb)
        self.gru = nn.GRU(emb + suffix_emb, hidden, num_layers=layers, bidirectional=True, batch_first=True)
        self.marks = nn.Linear(2 * hidden, len(MARKS))
        self.cases = nn.Linear(2 * hidden, len(CASES))
        self.dims = dict(vocab_size=vocab_size, emb=emb, suffix_emb=suffix_emb, hidden=hidden, layers=layers)

    def forward(self, words, suffixes):  # (B, T) -> (B, T, 4), (B, T, 3)
        h, _ = self.gru(torch.cat([self.words(words), self.suffixes(suffixes)], -1))
        return self.marks(h), self.cases(h)


def read_tokens(path: str):
    """Per source, the running text as arrays: words (str), marks, cases, sentence starts."""
    out: dict[str, list] = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            source, text = line.rstrip("\n").split("\t", 1)
            out.setdefault(source, []).extend(label_words(text))
    return out


def build_vocab(tokens, size: int) -> list[str]:
    counts = Counter(t.word for toks in tokens.values() for t in toks)
    return ["<unk>"] + [w for w, c in counts.most_common(size - 1) if c >= 2]


def encode(toks, vocab_id):
    words = np.array([vocab_id.get(t.word, 0) for t in toks], np.int64)
    suffixes = np.array([suffix_id(t.word) for t in toks], np.int64)
    marks = np.array([MARK_ID[t.mark] for t in toks], np.int64)
    cases = np.array([CASE_ID[t.case] for t in toks], np.int64)
    starts = np.flatnonzero(np.r_[True, np.isin(marks[:-1], (2, 3))])
    return words, suffixes, marks, cases, starts


def batches(data, batch: int, rng: random.Random, unk_rate: float = 0.05, shares: dict | None = None):
    """Endless batches of windows; each source is drawn in proportion to its words, or to its
    share in `shares` (source -> weight) where given."""
    names = list(data)
    weights = [(shares or {}).get(n, len(data[n][0]) / sum(len(v[0]) for v in data.values())) for n in names]
    while True:
        length = rng.randint(8, 64)
        rows = []
        for _ in range(batch):
            words, suffixes, marks, cases, starts = data[rng.choices(names, weights)[0]]
            n = len(words)
            start = int(starts[rng.randrange(len(starts))]) if rng.random() < 0.7 else rng.randrange(n)
            start = min(start, max(0, n - length))
            sl = slice(start, start + length)
            rows.append((words[sl], suffixes[sl], marks[sl], cases[sl]))
        t = min(len(r[0]) for r in rows)
        w, s, m, c = (torch.from_numpy(np.stack([r[k][:t] for r in rows])) for k in range(4))
        w = torch.where(torch.rand(w.shape) < unk_rate, torch.zeros_like(w), w)
        yield w, s, m, c


def export(model: Tagger, vocab: list[str], card: dict, path: str) -> None:
    """The ONNX graph of the tagger (see asr/punctuation.py for its inputs and outputs)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    nodes, inits = [], []

    def const(name, value, half=True):
        value = np.ascontiguousarray(value, np.float16 if half and value.dtype == np.float32 else None)
        inits.append(numpy_helper.from_array(value, name + ("_f16" if value.dtype == np.float16 else "")))
        if value.dtype == np.float16:
            nodes.append(helper.make_node("Cast", [name + "_f16"], [name], to=TensorProto.FLOAT))
        return name

    def node(kind, inputs, output, **attrs):
        nodes.append(helper.make_node(kind, inputs, [output], **attrs))
        return output

    e = node("Gather", [const("word_emb", sd["words.weight"]), "words"], "e_words")
    s = node("Gather", [const("suffix_emb", sd["suffixes.weight"]), "suffixes"], "e_suffixes")
    x = node("Transpose", [node("Concat", [e, s], "x0", axis=-1)], "x0_t", perm=[1, 0, 2])  # (T, B, C)
    H = model.dims["hidden"]
    for i in range(model.dims["layers"]):
        def stacked(name):  # (2, 3H, ...) in ONNX's gate order z, r, h from torch's r, z, n
            r, z, n = np.split(np.stack([sd[f"gru.{name}_l{i}{sfx}"] for sfx in ("", "_reverse")]), 3, axis=1)
            return np.concatenate([z, r, n], axis=1)
        y = node("GRU", [x, const(f"w{i}", stacked("weight_ih")), const(f"r{i}", stacked("weight_hh")),
                         const(f"b{i}", np.concatenate([stacked("bias_ih"), stacked("bias_hh")], axis=1))],
                 f"gru{i}", hidden_size=H, linear_before_reset=1, direction="bidirectional")
        y = node("Transpose", [y], f"gru{i}_t", perm=[0, 2, 1, 3])  # (T, 2, B, H) -> (T, B, 2, H)
        x = node("Reshape", [y, const(f"shape{i}", np.array([0, 0, 2 * H], np.int64))], f"h{i}")
    h = node("Transpose", [x], "h", perm=[1, 0, 2])  # (B, T, 2H)
    for head in ("marks", "cases"):
        node("Add", [node("MatMul", [h, const(f"{head}_w", sd[f"{head}.weight"].T)], f"{head}_mm"),
                     const(f"{head}_b", sd[f"{head}.bias"])], head)
    graph = helper.make_graph(
        nodes, "punctuation", [helper.make_tensor_value_info(n, TensorProto.INT64, ["B", "T"]) for n in ("words", "suffixes")],
        [helper.make_tensor_value_info("marks", TensorProto.FLOAT, ["B", "T", len(MARKS)]),
         helper.make_tensor_value_info("cases", TensorProto.FLOAT, ["B", "T", len(CASES)])], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="recipes/punctuation")
    helper.set_model_props(m, {"vocab": "\n".join(vocab), "card": json.dumps(card, ensure_ascii=False)})
    onnx.checker.check_model(m)
    onnx.save(m, path)


def evaluate_torch(model, data) -> dict:
    """Scores of whole paragraphs-in-a-row windows (64 words) on held-out text, through the torch model."""
    scores = Scores()
    model.eval()
    with torch.no_grad():
        for words, suffixes, marks, cases, _ in data.values():
            for lo in range(0, len(words), 64):
                sl = slice(lo, lo + 64)
                pm, pc = model(torch.from_numpy(words[sl])[None], torch.from_numpy(suffixes[sl])[None])
                pm, pc = pm[0].argmax(-1).numpy(), pc[0].argmax(-1).numpy()
                for k in range(3):
                    kk = k + 1
                    scores.tp[MARKS[kk]] += int(((pm == kk) & (marks[sl] == kk)).sum())
                    scores.fp[MARKS[kk]] += int(((pm == kk) & (marks[sl] != kk)).sum())
                    scores.fn[MARKS[kk]] += int(((pm != kk) & (marks[sl] == kk)).sum())
                scores.case_right += int((pc == cases[sl]).sum())
                scores.words += len(pm)
    model.train()
    return scores.report()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_dir")
    ap.add_argument("exp_dir")
    ap.add_argument("--vocab-size", type=int, default=12000)
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--minutes", type=float, default=25.0, help="stop after this many minutes of this run")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=20261205)
    ap.add_argument("--shares", default="", metavar="SRC=W,...",
                    help="how often each source is drawn (default: by its words), e.g. web=0.7,jargon=0.2,prompts=0.1")
    ap.add_argument("--init", metavar="PT", help="start from this model (a best.pt), with its vocabulary")
    ap.add_argument("--export", metavar="ONNX", help="export EXP_DIR/best.pt to this file and exit")
    ap.add_argument("--card", metavar="JSON", help="with --export: entries to add to the model card (measured figures)")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    os.makedirs(args.exp_dir, exist_ok=True)
    last, best = os.path.join(args.exp_dir, "last.pt"), os.path.join(args.exp_dir, "best.pt")

    if args.export:
        ck = torch.load(best, weights_only=False)
        model = Tagger(**ck["dims"])
        model.load_state_dict(ck["model"])
        card = {**ck["card"], "parameters": sum(p.numel() for p in model.parameters()),
                "architecture": "word (64) + 2-letter suffix (16) embeddings, 2 x bidirectional GRU 128, "
                                "heads for the mark after each word (none , . ?) and its case (lower, Capitalised, UPPER)"}
        if args.card:
            with open(args.card, encoding="utf-8") as f:
                card.update(json.load(f))
        export(model, ck["vocab"], card, args.export)
        print(f"wrote {args.export} ({os.path.getsize(args.export) / 1e6:.1f} MB)")
        return

    train_tokens = read_tokens(os.path.join(args.data_dir, "train.txt"))
    init = torch.load(args.init, weights_only=False) if args.init else None
    vocab = init["vocab"] if init else build_vocab(train_tokens, args.vocab_size)
    shares = {k: float(v) for k, v in (x.split("=") for x in args.shares.split(",") if x)}
    vocab_id = {w: i for i, w in enumerate(vocab)}
    train = {k: encode(v, vocab_id) for k, v in train_tokens.items()}
    dev = {k: encode(v, vocab_id) for k, v in read_tokens(os.path.join(args.data_dir, "dev.txt")).items()}
    print(f"train words: { {k: len(v[0]) for k, v in train.items()} }, vocab {len(vocab)}", flush=True)
    model = Tagger(len(vocab))
    if init:
        model.load_state_dict(init["model"])
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=args.steps, pct_start=0.05)
    step, best_f1, history = 0, -1.0, []
    if os.path.exists(last):
        ck = torch.load(last, weights_only=False)
        model.load_state_dict(ck["model"]), opt.load_state_dict(ck["opt"]), sched.load_state_dict(ck["sched"])
        step, best_f1, history = ck["step"], ck["best_f1"], ck["history"]
        print(f"resumed at step {step}", flush=True)
    rng = random.Random(args.seed + step)
    loss_fn = nn.CrossEntropyLoss()
    t0, began = time.process_time(), time.time()
    for w, s, m, c in batches(train, args.batch, rng, shares=shares):
        if step >= args.steps or time.time() - began > args.minutes * 60:
            break
        pm, pc = model(w, s)
        loss = loss_fn(pm.reshape(-1, len(MARKS)), m.reshape(-1)) + loss_fn(pc.reshape(-1, len(CASES)), c.reshape(-1))
        opt.zero_grad()
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        if step % args.eval_every == 0 or step == args.steps:
            report = evaluate_torch(model, dev)
            history.append({"step": step, "loss": round(loss.item(), 4), **report})
            print(json.dumps(history[-1]), f"cpu {time.process_time() - t0:.0f} s", flush=True)
            f1 = report["all_marks_f1"] + report["casing_accuracy"]
            card = {"what": "punctuation (, . ?) and casing for lower-case transcripts",
                    "trained_on": "World English Bible (public domain), Jargon File 4.4.7 (public domain), "
                                  "CMU ARCTIC train prompts and LJ Speech prompts (public domain); recipes/punctuation",
                    "steps": step, "dev": report}
            if f1 > best_f1:
                best_f1 = f1
                torch.save({"model": model.state_dict(), "dims": model.dims, "vocab": vocab, "card": card}, best)
            torch.save({"model": model.state_dict(), "opt": opt.state_dict(), "sched": sched.state_dict(), "step": step,
                        "best_f1": best_f1, "history": history}, last)
    print(f"stopped at step {step}; cpu {time.process_time() - t0:.0f} s this run")


if __name__ == "__main__":
    main()
