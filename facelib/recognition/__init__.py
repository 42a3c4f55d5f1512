"""A trained model at work: the network and its folder, the model card, calibrations, verification, open-set identification and the gallery."""
