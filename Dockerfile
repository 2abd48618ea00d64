# A Debian 12 image with vcard and everything it needs installed.
FROM debian:12
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update -q && apt-get install -y -q --no-install-recommends python3 python3-venv ca-certificates \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . /src
RUN scripts/setup
CMD ["bash", "-c", "scripts/up && exec tail -F /run/vcard/daemon.log"]
