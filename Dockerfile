# syntax=docker/dockerfile:1
# Every Python image of the project: the five gRPC stages, the Celery worker and the HTTP gateway. (nginx,
# which serves the page, has its own base and file: deploy/nginx/Dockerfile.) docker-compose.yml holds the
# build settings of each image, so the usual way to build one is `docker compose build <service>`; by hand,
# from the repository root:
#
#   docker build --target stage --build-arg STAGE=warp --build-arg PORT=50053 --build-arg METRICS_PORT=9103 \
#       -t tryon-warp .
#   docker build --target stage --build-arg RUNTIME=gpu --build-arg EXTRAS=lite,full \
#       --build-arg STAGE=inpaint --build-arg PORT=50054 --build-arg METRICS_PORT=9104 -t tryon-inpaint .
#   docker build --target worker --build-arg EXTRAS=orchestrator -t tryon-worker .
#   docker build --target gateway --build-arg EXTRAS=gateway -t tryon-gateway .
#
# What differs between the images:
#   --target        the kind of process: `stage`, `worker` or `gateway`. Each kind has its own sources, health
#                   check, entrypoint and settings' defaults (written out in its final stage below).
#   RUNTIME         `cpu` (default): the slim Python base. `gpu`: NVIDIA's CUDA base with uv's standalone
#                   CPython, for segmentation, pose and inpaint (and a worker that runs the stages in process).
#   EXTRAS          extras of pyproject.toml installed besides the base dependencies (comma separated):
#                   `lite,full` for the GPU stages, none for warp and blend, `orchestrator` for the worker
#                   (`orchestrator,lite,full` for TRYON_STAGE_MODE=inprocess), `gateway` for the gateway.
#   STAGE, PORT, METRICS_PORT   the stage an image of the `stage` target serves, and its default ports.
# tests/deploy/test_images.py renders this file for every image of docker-compose.yml and checks what each
# one resolves to against the stage registry and the settings.
#
# The recipe: a build stage makes /opt/venv with uv from pyproject.toml + constraints.txt and the EXTRAS
# (dependencies before sources, so a code change reuses that layer), the final stage copies it onto a pinned
# base without compilers, pip or uv, and runs as the numeric non-root user 10001. Model weights are never in
# an image: /models is the mount point of the cache `tryon models pull` fills, /data/jobs that of the local
# job store; both belong to the user, so a named volume mounted there is writable too.
# BuildKit builds only the stages the chosen target and RUNTIME reach, and images that agree on RUNTIME and
# EXTRAS share every layer up to their sources.

ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm
ARG CUDA_IMAGE=nvidia/cuda:13.0.1-base-ubuntu24.04
ARG RUNTIME=cpu

# ------------------------------------------------------------------------------------- build: /opt/venv

FROM ${PYTHON_IMAGE} AS uv
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    UV_NO_CACHE=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH
RUN pip install uv==0.13.9

# CPU images run the Python of the slim base: the venv is made from it.
FROM uv AS python-cpu
RUN uv venv --python /usr/local/bin/python3.11 /opt/venv

# The CUDA base has no Python of its own: uv's standalone CPython goes to /opt/python, copied along.
FROM uv AS python-gpu
ENV UV_PYTHON_INSTALL_DIR=/opt/python \
    UV_PYTHON_PREFERENCE=only-managed
RUN uv python install 3.11.13 && uv venv --python 3.11.13 /opt/venv

# A stage of this file, chosen by RUNTIME (hadolint takes it for an untagged image).
# hadolint ignore=DL3006
FROM python-${RUNTIME} AS dependencies
ARG EXTRAS=
WORKDIR /src
# Dependencies before sources, from pyproject.toml + constraints.txt only, so a code change reuses the layer.
COPY pyproject.toml constraints.txt ./
RUN EXTRAS="${EXTRAS}" python -c "import os, tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; \
print('\n'.join(p['dependencies'] + [d for e in os.environ['EXTRAS'].split(',') if e for d in p['optional-dependencies'][e]]))" \
      > requirements.txt \
    && uv pip install -r requirements.txt -c constraints.txt
COPY tryon/ tryon/

# The project itself, with the packages each kind of process runs and nothing else.
FROM dependencies AS build-stage
COPY services/ services/
RUN uv pip install --no-deps -c constraints.txt .

# The worker imports the stages too (TRYON_STAGE_MODE=inprocess runs them inside it).
FROM dependencies AS build-worker
COPY services/ services/
COPY orchestrator/ orchestrator/
RUN uv pip install --no-deps -c constraints.txt .

FROM dependencies AS build-gateway
COPY gateway/ gateway/
RUN uv pip install --no-deps -c constraints.txt .

# ------------------------------------------------------------------------------------- runtime bases

# CPU images: the slim Python base.
FROM ${PYTHON_IMAGE} AS runtime-cpu
# opencv-contrib-python (a base dependency, the cv2 mediapipe pulls too) is the non-headless build: it links
# libGL and glib at import. pip and setuptools of the base image go: nothing installs at run time.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0 \
    && rm -rf /var/lib/apt/lists/* \
    && python -m pip uninstall -y -q pip setuptools wheel \
    && useradd --create-home --uid 10001 --user-group tryon \
    && mkdir -p /models /data/jobs && chown tryon:tryon /models /data/jobs

# GPU images: NVIDIA's CUDA base (the CUDA runtime, and the labels and environment the NVIDIA container
# toolkit reads) with uv's standalone CPython; torch's CUDA 13 wheels bring cuBLAS / cuDNN at the versions
# torch was built with. Hosts need an NVIDIA driver >= 580 (CUDA 13).
FROM ${CUDA_IMAGE} AS runtime-gpu
# opencv-contrib-python (a base dependency, the cv2 mediapipe pulls too) is the non-headless build: it links
# libGL and glib at import.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgl1 libglib2.0-0t64 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --create-home --uid 10001 --user-group tryon \
    && mkdir -p /models /data/jobs && chown tryon:tryon /models /data/jobs
COPY --from=python-gpu /opt/python /opt/python
ENV NVIDIA_DRIVER_CAPABILITIES=compute,utility

# What every image has on either base. The venv comes last, in each image's stage below.
# hadolint ignore=DL3006
FROM runtime-${RUNTIME} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    HF_HOME=/models
# Numeric, so Kubernetes can verify runAsNonRoot without reading /etc/passwd.
USER 10001:10001
WORKDIR /home/tryon

# ------------------------------------------------------------------------------------- the images

# The gateway (CPU): the HTTP API (FastAPI on uvicorn) that takes uploads, creates and enqueues jobs and
# answers polls and server-sent events. nginx serves the page in front of it (deploy/nginx/Dockerfile), so
# the gateway does not (TRYON_SERVE_FRONTEND=false).
FROM runtime AS gateway
COPY --from=build-gateway /opt/venv /opt/venv
ENV TRYON_STORAGE_DIR=/data/jobs \
    TRYON_SERVE_FRONTEND=false
# HTTP (TRYON_PORT). /api/health answers while the process serves; /api/ready also checks Redis and storage.
EXPOSE 8000
HEALTHCHECK --interval=15s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TRYON_PORT', '8000') + '/api/health', timeout=4).status != 200)"]
ENTRYPOINT ["tryon-gateway"]

# The worker (CPU): the Celery worker running try-on jobs (task "tryon.run_job"). In the default stage mode
# (TRYON_STAGE_MODE=remote) it calls the five gRPC stage services and needs no models; for
# TRYON_STAGE_MODE=inprocess build it with the stages' extras (and RUNTIME=gpu), so they run inside it.
FROM runtime AS worker
COPY --from=build-worker /opt/venv /opt/venv
ENV TRYON_STORAGE_DIR=/data/jobs
# Prometheus /metrics: job counters and the queue depth (TRYON_WORKER_METRICS_PORT).
EXPOSE 9100
# The /metrics listener runs in the worker's main process (the pool processes are its children): it
# answers while the worker is up. SIGTERM is a warm shutdown: running jobs finish first.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('TRYON_WORKER_METRICS_PORT', '9100') + '/metrics', timeout=4).status != 200)"]
ENTRYPOINT ["tryon-worker"]

# A gRPC stage service: `python -m services.$STAGE`. Segmentation, pose and inpaint (RUNTIME=gpu,
# EXTRAS=lite,full) serve full when the weights are in the model volume and a GPU is visible, lite otherwise
# (TRYON_BACKEND=auto); the inpaint image also runs `tryon models pull`. Warp and blend (RUNTIME=cpu, no
# extras) have one implementation and no models.
# Last, so a build without --target is a stage image: the warp stage (CPU, no extras) unless STAGE, PORT and
# METRICS_PORT say otherwise, so a plain `docker build .` makes an image that starts.
FROM runtime AS stage
COPY --from=build-stage /opt/venv /opt/venv
ARG STAGE=warp
ARG PORT=50053
ARG METRICS_PORT=9103
# The stage's own port settings, at its defaults (the registry's, tryon/stages.py): the health check reads
# TRYON_PORT.
ENV STAGE_MODULE=services.${STAGE} \
    TRYON_PORT=${PORT} \
    TRYON_METRICS_PORT=${METRICS_PORT}
# gRPC, then Prometheus /metrics.
EXPOSE ${PORT} ${METRICS_PORT}
# grpc_health_probe's job in Python: SERVING once the backend is loaded and warm. HEALTHCHECK options take
# no variables, so the start period is the longest stage's (SDXL + ControlNet from a cold disk); it only
# forgives failures while starting, a stage turns healthy at its first passing check. Compose and the
# Kubernetes probes set their own timings per service.
HEALTHCHECK --interval=15s --timeout=5s --start-period=600s --retries=3 \
    CMD ["python", "-c", "import os, sys, grpc; from grpc_health.v1 import health_pb2 as h, health_pb2_grpc as g; c = grpc.insecure_channel('127.0.0.1:' + os.environ['TRYON_PORT']); sys.exit(g.HealthStub(c).Check(h.HealthCheckRequest(), timeout=4).status != h.HealthCheckResponse.SERVING)"]
# exec: python is PID 1 and gets SIGTERM itself (it drains in-flight calls). Arguments of `docker run` or a
# Kubernetes `args:` follow the module's name.
ENTRYPOINT ["/bin/sh", "-c", "exec python -m \"$STAGE_MODULE\" \"$@\"", "--"]
