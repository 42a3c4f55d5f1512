"""Foundations with no facelib dependency above them: settings and presets, errors, atomic files, the machine (CPU, math choices), the distance rule and pure metrics."""
