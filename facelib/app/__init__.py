"""Front ends that only call the layers below and format what they return: the command line, the webcam dashboard and its controller, and `facelib doctor`."""
