# kpistream: build on Debian 12 with Debian's packages, run on a slim image.
FROM debian:bookworm AS build
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential cmake pkg-config librdkafka-dev libhiredis-dev libmsgpack-dev \
        libinih-dev libmicrohttpd-dev libcurl4-openssl-dev libjemalloc-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cmake -S . -B /build -DCMAKE_BUILD_TYPE=Release && cmake --build /build -j"$(nproc)" \
        --target kpistream kpistream-gen

FROM debian:bookworm-slim
RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        librdkafka1 libhiredis0.14 libinih1 libmicrohttpd12 libcurl4 libjemalloc2 curl ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /build/kpistream /build/kpistream-gen /usr/local/bin/
COPY config/kpistream.ini /etc/kpistream/kpistream.ini
# Never root: a fixed numeric uid (10001) so orchestrators can check
# runAsNonRoot and secret files can be given to it (docker-compose.yml).
RUN groupadd --system --gid 10001 kpistream \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin kpistream
USER 10001:10001
EXPOSE 9464
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s CMD curl -fsS http://127.0.0.1:9464/healthz || exit 1
ENTRYPOINT ["kpistream"]
CMD ["--config", "/etc/kpistream/kpistream.ini"]
