# lb in a container. The base image is a build argument so an offline build can
# use a locally imported image; wheels/ (optional) lets the image install
# without reaching a package index:
#   pip wheel -w wheels .  &&  docker build --build-arg BASE_IMAGE=<local image> .
ARG BASE_IMAGE=python:3.11-slim
FROM ${BASE_IMAGE}

WORKDIR /opt/lb
COPY pyproject.toml README.md ./
COPY lb ./lb
COPY wheel[s] ./wheels/
RUN if [ -d wheels ] && ls wheels/*.whl >/dev/null 2>&1; then \
        python3 -m pip install --no-cache-dir --no-index --find-links wheels . ; \
    else \
        python3 -m pip install --no-cache-dir . ; \
    fi \
 && rm -rf wheels

# client-facing listeners and the link listener are set in the farm file
EXPOSE 8080 7100
USER nobody
ENTRYPOINT ["lb"]
CMD ["run", "--config", "/etc/lb/farm.toml"]
