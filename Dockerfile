# bertqa: HTTP question answering on ONNX Runtime.
#   CPU:  docker build -t bertqa .
#   CUDA: docker build -t bertqa:cuda --build-arg VARIANT=cuda \
#           --build-arg RUNTIME_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04 .
# The builder runs the same setup script and release build as CI; the runtime image holds only
# the binary, ONNX Runtime's shared libraries (from the PyPI wheel, no Python; for CUDA the
# onnxruntime-gpu build with its CUDA provider, whose cuBLAS/cuRAND/cudart 13 come from the
# CUDA runtime base), CA certificates and the default model folder.
# One file for both variants, so the CUDA image cannot drift from the CPU one.

ARG RUNTIME_IMAGE=debian:bookworm-slim

FROM rust:1.95-slim-bookworm AS builder
ARG VARIANT=cpu
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN if [ "$VARIANT" = cuda ]; then gpu=--gpu; else gpu=; fi \
    && scripts/setup-native.sh --no-libtorch $gpu \
    && cargo build --release --locked --bin bertqa

FROM ${RUNTIME_IMAGE} AS runtime
ARG VARIANT=cpu
RUN apt-get update \
    && apt-get install --yes --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bertqa
COPY --from=builder /src/target/release/bertqa /usr/local/bin/bertqa
COPY --from=builder /src/native/onnxruntime/ /opt/bertqa/lib/
COPY models/minilm-l6-squad1 /opt/bertqa/models/minilm-l6-squad1
# The CUDA image serves on the GPU unless BERTQA_DEVICE says otherwise; mount a folder with the
# fp32 graph (export without --int8-only) there: int8 dynamic quantization runs on the CPU.
ENV ORT_DYLIB_PATH=/opt/bertqa/lib/libonnxruntime.so.1.31.1 \
    BERTQA_MODEL_DIR=/opt/bertqa/models/minilm-l6-squad1 \
    BERTQA_DEVICE=${VARIANT} \
    BERTQA_HOST=0.0.0.0 \
    BERTQA_PORT=8080 \
    BERTQA_LOG_FORMAT=json
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bertqa", "probe", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["bertqa"]
CMD ["serve"]
