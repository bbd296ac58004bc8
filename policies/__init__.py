"""Robot policies: demonstrations, training, ONNX export and offline evaluation on Meta-World."""
