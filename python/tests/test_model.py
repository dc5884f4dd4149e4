"""recur.load and recur.Model on checkpoints written by the CLI: sample, score, evaluate, tag,
classify, translate give what the CLI's commands print; methods refuse other kinds by name;
weights as numpy views under PyTorch's names, into torch.nn.LSTM and back."""
import os

import numpy as np
import pytest

import recur
from conftest import SOURCE, run_cli

FIXTURES = os.path.join(SOURCE, "tests", "fixtures", "v1")


@pytest.fixture(scope="module")
def lm_path(tmp_path_factory):
    """A character LSTM trained by the CLI."""
    d = tmp_path_factory.mktemp("lm")
    from conftest import corpus_text
    data = d / "corpus.txt"
    data.write_text(corpus_text())
    run_cli("train", data, "--out", d / "run", "--hidden", 32, "--layers", 2, "--batch", 4, "--seq-len", 16,
            "--steps", 40, "--valid-every", 20, "--seed", 3)
    return str(d / "run" / "best.safetensors"), str(data)


def test_sample_score_evaluate_as_the_cli(lm_path):
    path, data = lm_path
    m = recur.load(path)
    assert m.kind == "lm" and m.path == path and "lstm 2x32" in m.summary
    # sample: the CLI writes the sample and ends it with a line break.
    text = m.sample(120, temperature=0.7, seed=11, prime="the ")
    cli = run_cli("sample", path, "--length", 120, "--temperature", 0.7, "--seed", 11, "--prime", "the ").stdout
    assert text.startswith("the ") and cli == (text if text.endswith("\n") else text + "\n")
    many = m.sample(30, count=3, seed=5)
    cli = run_cli("sample", path, "--length", 30, "--count", 3, "--seed", 5).stdout
    assert isinstance(many, list) and len(many) == 3
    assert cli == "\n".join(s if s.endswith("\n") else s + "\n" for s in many)
    assert m.sample(30, seed=5) == many[0]
    # score: the CLI's columns ln_prob, log10_prob, tokens, oov, ppl.
    sentences = ["the cat sat on a mat", "birds sang in old trees"]
    scores = m.score(sentences, per_token=True)
    rows = run_cli("score", path, *sentences).stdout.splitlines()[1:3]
    for s, row in zip(scores, rows):
        ln, log10, tokens, oov, ppl, _ = row.split("\t")
        assert (f"{s['logprob']:.4f}", f"{s['log10prob']:.4f}", str(s["tokens"]), str(s["oov"]),
                f"{s['perplexity']:.4f}") == (ln, log10, tokens, oov, ppl)
        assert len(s["per_token"]) == s["tokens"]
        assert abs(sum(lp for _, lp, _ in s["per_token"]) - s["logprob"]) < 1e-9
    assert m.score(sentences[0]) == {k: v for k, v in scores[0].items() if k != "per_token"}
    # evaluate: the CLI's loss line.
    r = m.evaluate(data)
    cli = run_cli("eval", path, data).stdout
    assert f"loss        {r['loss']:.6f} nats/token" in cli
    assert f"bpc         {r['bits_per_token']:.6f} bits/character" in cli


def test_methods_refuse_other_kinds(lm_path):
    path, data = lm_path
    m = recur.load(path)
    with pytest.raises(recur.Error, match=f"^{path}: a lm model; classify applies to models of kind classify$"):
        m.classify("good food")
    with pytest.raises(recur.Error, match="a lm model; translate applies to models of kind seq2seq$"):
        m.translate("red green")
    with pytest.raises(recur.Error, match="a lm model; tag applies to models of kind tag$"):
        m.tag(data)
    tagger = recur.load(os.path.join(FIXTURES, "tagger.safetensors"))
    with pytest.raises(ValueError, match="a tag model; sample applies to models of kind lm or generate$"):
        tagger.sample()
    with pytest.raises(recur.Error, match="a tag model; score applies to models of kind lm$"):
        tagger.score("x")
    music = recur.load(os.path.join(FIXTURES, "music.safetensors"))
    assert music.kind == "music"
    with pytest.raises(recur.Error, match="a music model; sample applies to models of kind lm or generate$"):
        music.sample()


def test_load_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{}")
    with pytest.raises(recur.FormatError, match="^" + str(bad)):
        recur.load(str(bad))
    with pytest.raises(recur.Error, match="^" + str(tmp_path / "none.safetensors")):
        recur.load(str(tmp_path / "none.safetensors"))


def test_tag_and_translate_as_the_cli(tmp_path):
    tagger = os.path.join(FIXTURES, "tagger.safetensors")
    conll = os.path.join(FIXTURES, "tag_eval.conll")
    m = recur.load(tagger)
    assert m.kind == "tag" and m.labels
    out = tmp_path / "tagged.txt"
    tags = m.tag(conll, output=str(out))
    cli = run_cli("tag", tagger, conll).stdout
    assert out.read_text() == cli
    # Each sentence's tags are the last column of its lines in the tagged file.
    cli_tags = [line.split()[-1] for line in cli.splitlines() if line and not line.startswith("-DOCSTART-")]
    assert [t for sentence in tags for t in sentence] == cli_tags
    r = m.evaluate(conll)
    assert r["metric_name"] == "f1" and r["report"] in run_cli("eval", tagger, conll).stdout

    s2s = os.path.join(FIXTURES, "seq2seq.safetensors")
    src = os.path.join(FIXTURES, "s2s_eval.txt")
    m = recur.load(s2s)
    sentences = [line.split("\t")[0] for line in open(src).read().splitlines()]
    for beam in (1, 3):
        got = m.translate(sentences, beam=beam)
        assert got == run_cli("translate", s2s, "--beam", beam, *sentences).stdout.splitlines()
        assert m.translate(sentences[0], beam=beam) == got[0]
    assert m.translate(file=src) == run_cli("translate", s2s, "--file", src).stdout.splitlines()


def test_classify_and_generate_trained_from_python(tmp_path):
    rows = []
    for i in range(80):
        good = i % 2 == 0
        rows.append(("great tasty food nice" if good else "awful cold food bad").split()[i % 3:] )
        rows[-1] = " ".join(rows[-1]) + ("\tpos" if good else "\tneg")
    data = tmp_path / "train.tsv"
    data.write_text("\n".join(rows) + "\n")
    recur.train(str(data), out=str(tmp_path / "cls"), task="classify", hidden=8, embed=8, epochs=3, seed=2,
                on_note=None)
    path = str(tmp_path / "cls" / "last.safetensors")
    m = recur.load(path)
    assert m.kind == "classify" and sorted(m.labels) == ["neg", "pos"]
    texts = ["tasty food", "cold bad food"]
    got = m.classify(texts)
    for (label, probs), line in zip(got, run_cli("classify", path, *texts).stdout.splitlines()):
        assert line == label + "".join(f"\t{k}={v:.4f}" for k, v in probs.items())
        assert abs(sum(probs.values()) - 1) < 1e-9
    # Alone, the text is a batch of one (no padding): the same label, probabilities to rounding.
    label, probs = m.classify(texts[0])
    assert label == got[0][0] and all(abs(probs[k] - got[0][1][k]) < 1e-6 for k in probs)

    names = tmp_path / "names.tsv"
    names.write_text("".join(f"{c}\t{w}\n" for c, w in [("A", "anna"), ("A", "alma"), ("B", "bob"), ("B", "bea")] * 10))
    recur.train(str(names), out=str(tmp_path / "gen"), task="generate", hidden=8, embed=8, epochs=2, seed=2,
                on_note=None)
    path = str(tmp_path / "gen" / "last.safetensors")
    g = recur.load(path)
    assert g.kind == "generate"
    samples = g.sample(count=3, condition="A", seed=4, length=12)
    cli = run_cli("sample", path, "--condition", "A", "--count", 3, "--seed", 4, "--length", 12).stdout
    assert cli == "".join(f"A\t{s}\n" for s in samples)
    with pytest.raises(recur.Error, match="^condition: Z is not one of the model's 2 labels$"):
        g.sample(condition="Z")


def test_state_dict_views_and_load_state_dict(lm_path, tmp_path):
    path, _ = lm_path
    m = recur.load(path)
    sd = m.state_dict()
    assert {"rnn.weight_ih_l0", "rnn.bias_hh_l1", "decoder.weight", "decoder.bias"} <= set(sd)
    rnn = m.state_dict("rnn")
    assert sorted(rnn) == sorted(k[len("rnn."):] for k in sd if k.startswith("rnn."))
    # Views, not copies: same memory as the full dict's and on every call.
    assert rnn["weight_hh_l0"].ctypes.data == sd["rnn.weight_hh_l0"].ctypes.data
    assert m.state_dict()["decoder.weight"].ctypes.data == sd["decoder.weight"].ctypes.data
    before = m.score("the cat")["logprob"]
    saved = {k: v.copy() for k, v in sd.items()}
    sd["rnn.weight_hh_l0"][:] = 0
    assert m.score("the cat")["logprob"] != before
    m.load_state_dict(saved)
    assert m.score("the cat")["logprob"] == before
    assert m.state_dict()["rnn.weight_hh_l0"].ctypes.data == sd["rnn.weight_hh_l0"].ctypes.data
    with pytest.raises(recur.Error, match=r"^load_state_dict: unexpected tensor 'rnn.weight_ih_l9'"):
        m.load_state_dict(dict(saved, **{"rnn.weight_ih_l9": saved["rnn.weight_ih_l0"]}))
    with pytest.raises(recur.Error, match=r"^layer: the model has no layer 'lstm' \(its layers: "):
        m.state_dict("lstm")
    # save() writes a model the CLI reads.
    out = str(tmp_path / "copy.safetensors")
    m.save(out)
    assert recur.load(out).score("the cat") == m.score("the cat")
    assert run_cli("score", out, "the cat").stdout == run_cli("score", path, "the cat").stdout


def test_weights_into_torch_lstm(lm_path):
    torch = pytest.importorskip("torch")
    m = recur.load(lm_path[0])
    cfg = next(l for l in m.graph["layers"] if l["name"] == "rnn")["rnn"]
    lstm = torch.nn.LSTM(cfg["input_size"], cfg["hidden_size"], cfg["num_layers"])
    lstm.load_state_dict({k: torch.from_numpy(v) for k, v in m.state_dict("rnn").items()}, strict=True)
    layer = recur.RNN("lstm", cfg["input_size"], cfg["hidden_size"], cfg["num_layers"])
    layer.load_state_dict(m.state_dict("rnn"))
    x = np.random.default_rng(0).standard_normal((7, 2, cfg["input_size"])).astype(np.float32)
    out, (h, c) = layer(x)
    want, (want_h, want_c) = lstm(torch.from_numpy(x))
    assert np.max(np.abs(out - want.detach().numpy())) < 1e-5
    assert np.max(np.abs(c - want_c.detach().numpy())) < 1e-5
    # And back: torch's state_dict loads into the model.
    m.load_state_dict({k: v.detach().numpy() for k, v in lstm.state_dict().items()}, layer="rnn")


def test_export_and_compressed_sampling_as_the_cli(lm_path, tmp_path):
    path, _ = lm_path
    out = str(tmp_path / "small.safetensors")
    recur.export(path, out, precision="int8")
    m = recur.load(out)
    assert m.precision == "int8" and recur.load(path).precision == "f32"
    # The export samples in int8 by default, as `recur sample` does; precision= overrides it.
    cli = run_cli("sample", out, "--length", 60, "--seed", 4).stdout
    text = m.sample(60, seed=4)
    assert cli == (text if text.endswith("\n") else text + "\n")
    cli = run_cli("sample", path, "--length", 60, "--seed", 4, "--precision", "bf16").stdout
    text = recur.load(path).sample(60, seed=4, precision="bf16")
    assert cli == (text if text.endswith("\n") else text + "\n")
    assert m.precision == "int8"  # precision= lasts one call
    with pytest.raises(recur.Error, match="precision: got 'int4', expected f32, bf16 or int8"):
        m.sample(10, precision="int4")
    with pytest.raises(recur.Error, match="would replace the model it reads"):
        recur.export(out, out, precision="bf16")
