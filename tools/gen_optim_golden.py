#!/usr/bin/python3
"""Reference trajectories for recur's optimizers and gradient clipping (tests/test_optim.cpp).

Runs torch.optim.{SGD,Adam,Adagrad,RMSprop} and torch.nn.utils.clip_grad_{norm,value}_ in
float64 on small seeded tensors and writes every step to tests/golden/optim/*.json.
Floats are written by json's repr, which round-trips doubles exactly.

Run with Debian's interpreter (python3-torch), not a pyenv python3 on PATH:
    /usr/bin/python3 tools/gen_optim_golden.py [OUT_DIR]
"""
import json
import os
import sys

import torch

torch.set_default_dtype(torch.float64)

STEPS = 5
# Gradient scale per step: the shrinking steps make the second moment fall, so Adam's amsgrad
# max actually differs from exp_avg_sq and RMSprop/Adagrad see varied magnitudes.
GRAD_SCALES = [1.0, 0.05, 2.0, 0.01, 0.5]
# Parameter name -> shape. Two tensors so every loop over ParamRefs is exercised.
SHAPES = [("weight", [3, 4]), ("bias", [5])]

# Each case: (file, case name, torch class name, recur config, torch kwargs, per-step lr or None).
# recur config uses OptimizerConfig's field names; only non-default fields are listed.
CASES = [
    ("sgd", "plain", "SGD", {"lr": 0.1}, {"lr": 0.1}, None),
    ("sgd", "momentum_dampening", "SGD", {"lr": 0.05, "momentum": 0.9, "dampening": 0.25},
     {"lr": 0.05, "momentum": 0.9, "dampening": 0.25}, None),
    ("sgd", "nesterov_weight_decay", "SGD",
     {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01},
     {"lr": 0.05, "momentum": 0.8, "nesterov": True, "weight_decay": 0.01}, None),
    ("adam", "plain", "Adam", {"lr": 0.01}, {"lr": 0.01}, None),
    ("adam", "weight_decay_lr_schedule", "Adam", {"lr": 0.02, "weight_decay": 0.1},
     {"lr": 0.02, "weight_decay": 0.1}, [0.02, 0.02, 0.01, 0.005, 0.005]),
    ("adam", "amsgrad_betas", "Adam", {"lr": 0.01, "beta1": 0.8, "beta2": 0.95, "adam_eps": 1e-6, "amsgrad": True},
     {"lr": 0.01, "betas": (0.8, 0.95), "eps": 1e-6, "amsgrad": True}, None),
    ("adagrad", "plain", "Adagrad", {"lr": 0.1}, {"lr": 0.1}, None),
    ("adagrad", "lr_decay_init_acc_weight_decay", "Adagrad",
     {"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.1, "weight_decay": 0.05},
     {"lr": 0.1, "lr_decay": 0.1, "initial_accumulator_value": 0.1, "weight_decay": 0.05}, None),
    ("rmsprop", "plain", "RMSprop", {"lr": 0.01}, {"lr": 0.01}, None),
    ("rmsprop", "centered_momentum_weight_decay", "RMSprop",
     {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01},
     {"lr": 0.01, "alpha": 0.9, "momentum": 0.5, "centered": True, "weight_decay": 0.01}, None),
]


def flat(t):
    return [float(v) for v in t.detach().reshape(-1).tolist()]


def make_params(seed):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(shape, generator=g).requires_grad_(True) for _, shape in SHAPES]


def run_case(index, cls_name, kwargs, lrs):
    params = make_params(1000 + index)
    init = [flat(p) for p in params]
    opt = getattr(torch.optim, cls_name)(params, **kwargs)
    g = torch.Generator().manual_seed(2000 + index)
    steps = []
    for k in range(STEPS):
        lr = lrs[k] if lrs else kwargs["lr"]
        for group in opt.param_groups:
            group["lr"] = lr
        for p in params:
            p.grad = torch.randn(p.shape, generator=g) * GRAD_SCALES[k]
        grads = [flat(p.grad) for p in params]
        opt.step()
        steps.append({"lr": lr, "grads": grads, "params": [flat(p) for p in params]})
    # Final optimizer state under torch's own keys, to check recur's exported state names.
    state = {}
    for (name, _), p in zip(SHAPES, params):
        st = opt.state[p]
        state[name] = {key: flat(v) for key, v in st.items() if key != "step" and torch.is_tensor(v)}
    return init, steps, state


def clip_cases():
    out = []
    for index, (kind, arg) in enumerate([("norm", 0.5), ("norm", 100.0), ("value", 0.5)]):
        g = torch.Generator().manual_seed(3000 + index)
        params = [torch.zeros(shape, requires_grad=True) for _, shape in SHAPES]
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        before = [flat(p.grad) for p in params]
        case = {"kind": kind, "grads_before": before}
        if kind == "norm":
            case["max_norm"] = arg
            case["total_norm"] = float(torch.nn.utils.clip_grad_norm_(params, arg))
        else:
            case["clip_value"] = arg
            case["clipped_count"] = int(sum(int((p.grad.abs() > arg).sum()) for p in params))
            torch.nn.utils.clip_grad_value_(params, arg)
        case["grads_after"] = [flat(p.grad) for p in params]
        out.append(case)
    assert out[0]["total_norm"] > 0.5 and out[1]["total_norm"] < 100.0
    assert out[1]["grads_after"] == out[1]["grads_before"]
    return out


def main():
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "optim")
    os.makedirs(out_dir, exist_ok=True)
    header = {"torch_version": torch.__version__, "dtype": "float64", "steps": STEPS,
              "param_names": [n for n, _ in SHAPES], "param_shapes": [s for _, s in SHAPES]}
    files = {}
    for index, (file, name, cls_name, config, kwargs, lrs) in enumerate(CASES):
        init, steps, state = run_case(index, cls_name, kwargs, lrs)
        files.setdefault(file, dict(header, cases=[]))["cases"].append(
            {"name": name, "type": file, "config": config, "init": init, "steps": steps,
             "final_state": state})
    # amsgrad must matter for the amsgrad case to test anything.
    ams = next(c for c in files["adam"]["cases"] if c["name"] == "amsgrad_betas")["final_state"]
    assert ams["weight"]["max_exp_avg_sq"] != ams["weight"]["exp_avg_sq"]
    files["clip"] = dict(header, cases=clip_cases())
    for file, doc in files.items():
        with open(os.path.join(out_dir, file + ".json"), "w") as f:
            json.dump(doc, f, indent=None, separators=(",", ":"))
            f.write("\n")


if __name__ == "__main__":
    main()
