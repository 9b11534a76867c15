# bertqa: HTTP question answering on ONNX Runtime (CPU). Build: docker build -t bertqa .
# The builder runs the same setup script and release build as CI; the runtime image holds only
# the binary, ONNX Runtime's shared library (from the PyPI wheel, no Python), CA certificates
# and the default model folder.
# A CUDA image (onnxruntime-gpu provider libraries on an NVIDIA CUDA runtime base) is not built yet.

FROM rust:1.95-slim-bookworm AS builder
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN scripts/setup-native.sh --no-libtorch \
    && cargo build --release --locked --bin bertqa

FROM debian:bookworm-slim AS runtime
RUN apt-get update \
    && apt-get install --yes --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin bertqa
COPY --from=builder /src/target/release/bertqa /usr/local/bin/bertqa
COPY --from=builder /src/native/onnxruntime/libonnxruntime.so.1.31.1 /opt/bertqa/lib/
COPY models/minilm-l6-squad1 /opt/bertqa/models/minilm-l6-squad1
ENV ORT_DYLIB_PATH=/opt/bertqa/lib/libonnxruntime.so.1.31.1 \
    BERTQA_MODEL_DIR=/opt/bertqa/models/minilm-l6-squad1 \
    BERTQA_HOST=0.0.0.0 \
    BERTQA_PORT=8080 \
    BERTQA_LOG_FORMAT=json
USER 10001
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bertqa", "probe", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["bertqa"]
CMD ["serve"]
