# hybridrec training image. CPU by default:
#   docker build -t hybridrec .
#   docker run --rm -v "$PWD/runs:/work" hybridrec model=mf
# CUDA: take the CUDA wheel of torch instead of the CPU one:
#   docker build --build-arg TORCH_INDEX_URL=https://download.pytorch.org/whl/cu128 -t hybridrec:cuda .
#   docker run --gpus all --rm hybridrec:cuda trainer=gpu
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.13.0
ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu

ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HYBRIDREC_ROOT=/work

WORKDIR /opt/hybridrec
RUN pip install --no-cache-dir --index-url "${TORCH_INDEX_URL}" "torch==${TORCH_VERSION}"

COPY pyproject.toml README.md constraints.txt requirements.lock ./
COPY src ./src
COPY configs ./configs
RUN pip install --no-cache-dir -c requirements.lock . \
    && useradd --create-home --uid 1000 hybridrec \
    && mkdir -p /work && chown hybridrec /work

USER 1000
WORKDIR /work
# Runs, prepared data and the SQLite MLflow store land in /work (mount it to keep them).
ENTRYPOINT ["hybridrec-train"]
CMD []
