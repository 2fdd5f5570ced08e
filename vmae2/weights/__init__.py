"""Weights: official/HF key maps (keymaps), file I/O (files) and parameter surgery
(surgery), each once. `surgery.init_params` is what every stage's init_from uses."""
