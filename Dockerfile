# The etl binary, built in a Rust image and shipped in a slim one.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release -p etl && strip target/release/etl

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/etl /usr/local/bin/etl
COPY pipelines.toml /etc/etl/pipelines.toml
COPY fixtures/grist /usr/share/etl/fixtures/grist
ENV ETL_CONFIG=/etc/etl/pipelines.toml
ENTRYPOINT ["etl"]
CMD ["run"]
