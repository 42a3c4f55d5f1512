"""Measuring a model: the LFW protocols, your own folders, the robustness suite, the open-set benchmark, baselines and plots."""
