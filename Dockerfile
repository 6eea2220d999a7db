# feedlab service image: the API, the command line and the training jobs.
FROM python:3.11-slim
WORKDIR /app
# torch is pinned exactly and installed first; pass a CPU wheel index with
# --build-arg PIP_EXTRA_INDEX_URL=... to avoid pulling a CUDA build.
ARG PIP_EXTRA_INDEX_URL=""
RUN pip install --no-cache-dir torch==2.13.0
COPY pyproject.toml README.md ./
COPY feedlab ./feedlab
COPY feeddata ./feeddata
COPY recommenders ./recommenders
COPY experiment ./experiment
COPY api ./api
COPY analysis ./analysis
COPY experiments.toml ./
RUN pip install --no-cache-dir .
RUN useradd --create-home feedlab && mkdir -p /data && chown feedlab /data
USER feedlab
ENV FEEDLAB_ARTIFACTS=/data/artifacts
EXPOSE 8000
CMD ["feedlab", "serve", "--host", "0.0.0.0", "--port", "8000"]
