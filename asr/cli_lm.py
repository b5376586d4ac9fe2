"""`asr lm build|convert-pocketsphinx|binary`: n-gram language models for beam search."""
from __future__ import annotations

import os

from .cli_options import EXIT_USAGE, error, whole_number


# --------------------------------------------------------------------------- lm
def add_lm(sub) -> None:
    p = sub.add_parser("lm", help="build or convert n-gram language models for beam search",
                       description="Build an n-gram language model from text, or convert pocketsphinx's English "
                                   "model, for `--lm` (docs/lm.md).")
    lm_sub = p.add_subparsers(dest="lm_command", metavar="ACTION")
    lm_sub.required = True
    b = lm_sub.add_parser("build", help="modified Kneser-Ney ARPA model from text (KenLM lmplz)",
                          description="Estimate a modified Kneser-Ney n-gram model with KenLM's lmplz. Each line of "
                                      "TEXT is a sentence, normalised exactly as training transcripts are. TEXT may "
                                      "be plain text (.gz too; - for stdin) or a manifest (.tsv with a `text` column, "
                                      ".jsonl). OUTPUT ending in .bin or .binary gives a KenLM binary (faster to load).")
    b.add_argument("texts", nargs="+", metavar="TEXT")
    b.add_argument("-o", "--output", required=True, metavar="FILE", help="the model to write (.arpa, or .bin)")
    b.add_argument("--order", type=int, default=3, metavar="N", help="n-gram order (default: 3)")
    b.add_argument("--exclude", action="append", default=[], metavar="MANIFEST",
                   help="leave out every sentence of this manifest or text file (e.g. a dev set; repeatable)")
    b.add_argument("--prune", type=whole_number(0), nargs="+", metavar="N",
                   help="lmplz count thresholds per order, e.g. --prune 0 0 1 drops singleton trigrams")
    b.add_argument("--memory", default="1G", metavar="SIZE", help="lmplz sort memory (default: 1G; e.g. 20%%)")
    b.set_defaults(func=cmd_lm_build)
    c = lm_sub.add_parser("convert-pocketsphinx", help="pocketsphinx's English trigram model -> ARPA",
                          description="Convert a pocketsphinx trie model (default: the en-us.lm.bin that the "
                                      "pocketsphinx wheel ships, 72k words, BSD) to an ARPA file for --lm; with an "
                                      "OUTPUT ending in .bin, to a KenLM binary (needs build_binary).")
    c.add_argument("source", nargs="?", metavar="LM_BIN", help="pocketsphinx .lm.bin (default: the bundled en-us model)")
    c.add_argument("-o", "--output", required=True, metavar="FILE")
    c.add_argument("--all-words", action="store_true",
                   help="keep words this recogniser cannot spell (with digits, dots, ...)")
    c.set_defaults(func=cmd_lm_convert_pocketsphinx)
    k = lm_sub.add_parser("binary", help="ARPA -> KenLM binary (loads much faster)",
                          description="Convert an ARPA model (.arpa or .arpa.gz, e.g. LibriSpeech's) to a KenLM binary "
                                      "trie with KenLM's build_binary, and list its words in OUTPUT.vocab.")
    k.add_argument("arpa", metavar="ARPA")
    k.add_argument("-o", "--output", required=True, metavar="FILE")
    k.add_argument("--memory", default="1G", metavar="SIZE", help="build_binary memory (default: 1G)")
    k.set_defaults(func=cmd_lm_binary)


def cmd_lm_binary(args) -> int:
    from .lm import LMBuildError, to_binary
    if not os.path.isfile(args.arpa):
        error(f"{args.arpa}: no such file")
        return EXIT_USAGE
    try:
        to_binary(args.arpa, args.output, args.memory)
    except (LMBuildError, OSError) as err:
        error(str(err))
        return EXIT_USAGE
    print(f"wrote {args.output} ({os.path.getsize(args.output) / 1e6:.1f} MB) and {args.output}.vocab")
    return 0


def cmd_lm_build(args) -> int:
    from .lm import LMBuildError, build_lm, manifest_texts
    for path in args.exclude:
        if not os.path.isfile(path):
            error(f"{path}: no such file (--exclude)")
            return EXIT_USAGE
    try:
        stats = build_lm(args.texts, args.output, args.order, manifest_texts(args.exclude), args.memory, args.prune)
    except (LMBuildError, OSError, ValueError) as err:
        error(str(err))
        return EXIT_USAGE
    counts = " ".join(f"{n}-grams={c}" for n, c in enumerate(stats["ngrams"], 1))
    print(f"wrote {stats['output']} ({stats['bytes'] / 1e6:.1f} MB): {stats['sentences']} sentences, "
          f"{stats['words']} words, {counts}; excluded {stats['excluded']} sentences")
    return 0


def cmd_lm_convert_pocketsphinx(args) -> int:
    from .lm import LMBuildError
    from .pocketsphinx_lm import convert_pocketsphinx
    try:
        stats = convert_pocketsphinx(args.output, args.source, spellable_only=not args.all_words)
    except (LMBuildError, OSError) as err:
        error(str(err))
        return EXIT_USAGE
    counts = " ".join(f"{n}-grams={c}" for n, c in enumerate(stats["ngrams"], 1))
    print(f"wrote {stats['output']} ({stats['bytes'] / 1e6:.1f} MB) from {stats['source']}: {counts}")
    return 0
