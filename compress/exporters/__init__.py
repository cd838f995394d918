"""Exporters: ONNX (fp32), ONNX INT8 (Q/DQ), ONNX FP16 and TensorRT, each validated."""
