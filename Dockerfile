# bertqa: HTTP question answering on ONNX Runtime.
#   CPU:  docker build -t bertqa .          (or: podman build --format docker -t bertqa .)
#   CUDA: docker build -t bertqa:cuda --build-arg VARIANT=cuda \
#           --build-arg RUNTIME_IMAGE=nvidia/cuda:13.0.1-runtime-ubuntu24.04 .
# Without a registry (CI here), scripts/image/bases.sh makes local stand-ins for the base
# images and `make image` passes them as BUILDER_IMAGE (and RUNTIME_IMAGE for CUDA); the defaults stay
# the official public images, so a plain `docker build` needs no change.
#
# The CPU image is FROM scratch: the binary, ONNX Runtime's shared library (from the PyPI wheel,
# no Python), exactly the system libraries those two load (found with ldd in the builder), CA
# certificates, an /etc/passwd naming uid 10001 and the default model. No shell, no package
# manager: the HEALTHCHECK is `bertqa probe`, which needs neither. The CUDA image puts the same
# files on the CUDA runtime base, whose cuBLAS/cuRAND/cudart 13 the CUDA provider loads.
# One file for both variants, so the CUDA image cannot drift from the CPU one.

ARG BUILDER_IMAGE=rust:1.95-slim-bookworm
# scratch for the CPU image; the CUDA image needs a CUDA runtime base here, see above.
ARG RUNTIME_IMAGE=scratch

FROM ${BUILDER_IMAGE} AS builder
ARG VARIANT=cpu
# The source has no .git: the commit /info reports comes in as a build argument.
ARG BERTQA_GIT_COMMIT=unknown
# `compile` builds in the image; `prebuilt` takes dist/image/ from the build context instead
# (bin/bertqa and lib/, what scripts/image/stage-prebuilt.sh puts there), for CI, which has
# already compiled the same release binary on the same Debian release.
ARG BINARIES=compile
RUN apt-get update \
    && apt-get install --yes --no-install-recommends python3 python3-pip ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
# The registry, target and wheel caches outlive the build, so a rebuild after a source change
# recompiles only what changed.
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    --mount=type=cache,target=/root/.cache/bertqa/wheels \
    set -e; \
    if [ "$BINARIES" = prebuilt ]; then cp -r dist/image /out; exit 0; fi; \
    if [ "$VARIANT" = cuda ]; then gpu=--gpu; else gpu=; fi; \
    scripts/setup-native.sh --no-libtorch --no-pretrained $gpu; \
    cargo build --release --locked --bin bertqa; \
    mkdir -p /out/bin; \
    cp target/release/bertqa /out/bin/; \
    cp -r native/onnxruntime /out/lib

# Everything the runtime image adds to its base, laid out as a root file system. On scratch that
# includes the system libraries and /etc files; a CUDA base brings its own C library.
FROM ${BUILDER_IMAGE} AS rootfs
ARG VARIANT=cpu
ARG RUNTIME_IMAGE
COPY --from=builder /out/bin/bertqa /rootfs/usr/local/bin/bertqa
COPY --from=builder /out/lib/ /rootfs/opt/bertqa/lib/
COPY models/minilm-l6-squad1 /rootfs/opt/bertqa/models/minilm-l6-squad1
COPY scripts/image/collect-libs.sh /usr/local/bin/
RUN set -e; \
    rm -f /rootfs/opt/bertqa/lib/.stamp; \
    if [ "$VARIANT" = cuda ] && [ "$RUNTIME_IMAGE" = scratch ]; then \
      echo "VARIANT=cuda needs RUNTIME_IMAGE=<a CUDA 13 runtime base>," \
           "e.g. nvidia/cuda:13.0.1-runtime-ubuntu24.04" >&2; exit 1; fi; \
    if [ "$RUNTIME_IMAGE" != scratch ]; then exit 0; fi; \
    collect-libs.sh /rootfs /rootfs/usr/local/bin/bertqa \
      /rootfs/opt/bertqa/lib/libonnxruntime.so.1.31.1; \
    mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp; \
    chmod 1777 /rootfs/tmp; \
    cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/; \
    echo 'bertqa:x:10001:10001:bertqa:/nonexistent:/sbin/nologin' >/rootfs/etc/passwd; \
    echo 'bertqa:x:10001:' >/rootfs/etc/group

FROM ${RUNTIME_IMAGE}
ARG VARIANT=cpu
COPY --from=rootfs /rootfs/ /
# The CUDA image serves on the GPU unless BERTQA_DEVICE says otherwise; mount a folder with the
# fp32 graph (export without --int8-only) there: int8 dynamic quantization runs on the CPU.
ENV ORT_DYLIB_PATH=/opt/bertqa/lib/libonnxruntime.so.1.31.1 \
    BERTQA_MODEL_DIR=/opt/bertqa/models/minilm-l6-squad1 \
    BERTQA_DEVICE=${VARIANT} \
    BERTQA_HOST=0.0.0.0 \
    BERTQA_PORT=8080 \
    BERTQA_LOG_FORMAT=json
USER 10001:10001
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["bertqa", "probe", "http://127.0.0.1:8080/health"]
ENTRYPOINT ["bertqa"]
CMD ["serve"]
