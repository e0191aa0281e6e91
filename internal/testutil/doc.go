// Package testutil holds what parity tests share: comparison of float tensors
// against references with stated tolerances, and the path of the repository's
// testdata. It is imported only from _test.go files.
//
// Allowed imports: the standard library, tensor and safetensors.
package testutil
