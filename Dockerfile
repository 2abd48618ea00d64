# vcard images, one Dockerfile, one target per role (docker-compose.yml builds them):
#   client  a PC/SC client (pcsc-tools: pcsc_scan, scriptor) and nothing else
#   pcscd   pcscd + vpcd; vpcd listens only on the loopback of the container's own network
#   card    the vcard daemon and CLI (plus pcscd + vpcd for the one-container card-stack)
#           (runtime: the layers card and test share)
#   test    card + the PC/SC clients + the test suite; runs the end-to-end tests (needs root)
#
# Before building: scripts/docker-base (debian:12: pulled, or made with debootstrap where no
# registry is reachable) and scripts/wheelhouse (the Python wheels, built on the host into
# docker/wheels/: image builds never reach a package index and are reproducible).
#
# Pinned Debian 12 package versions (read with `apt-cache policy` on Debian 12, bookworm +
# bookworm-updates + bookworm-security). pcscd and libpcsclite1 come from one source package
# (pcsc-lite) and MUST be the same version in every image: libpcsclite checks pcscd's
# client/server protocol version (4.4 in 1.9.9) when it opens a context and refuses a mismatch,
# so a client image with another pcsc-lite cannot talk to the pcscd container. One ARG pins
# both; tests/e2e/test_containers.py checks the installed versions in each image and that a
# client image really talks to the pcscd image.
ARG BASE=debian:12
ARG PCSCLITE_VERSION=1.9.9-2
ARG VPCD_VERSION=3.3+dfsg-2
ARG PCSC_TOOLS_VERSION=1.6.2-1
ARG PYTHON3_VERSION=3.11.2-1+b1
ARG OPENSC_VERSION=0.23.0-0.3+deb12u2
ARG YUBICO_PIV_TOOL_VERSION=2.2.0-1.1
ARG OPENSSL_VERSION=3.0.22-1~deb12u2
ARG IPROUTE2_VERSION=6.1.0-3
ARG PROCPS_VERSION=2:4.0.2-3

FROM ${BASE} AS base
ARG PCSCLITE_VERSION
ENV DEBIAN_FRONTEND=noninteractive LANG=C.UTF-8
# The package lists stay in this layer, so the stages below install without another update.
# uid 10001 runs everything but the test image; /run/pcscd is its, so a pcscd (and the shared
# socket volume mounted there, which Docker initialises from this directory) is writable by it.
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends libpcsclite1="${PCSCLITE_VERSION}" \
 && groupadd -g 10001 vcard && useradd -u 10001 -g vcard -d /var/lib/vcard -M -s /usr/sbin/nologin vcard \
 && install -d -o vcard -g vcard -m 0755 /run/pcscd /farm \
 && install -d -o vcard -g vcard -m 0700 /run/vcard /var/lib/vcard

FROM base AS client
ARG PCSC_TOOLS_VERSION
RUN apt-get install -y -q --no-install-recommends pcsc-tools="${PCSC_TOOLS_VERSION}" && apt-get clean
USER vcard
CMD ["pcsc_scan"]

FROM base AS pcscd
ARG PCSCLITE_VERSION
ARG VPCD_VERSION
RUN apt-get install -y -q --no-install-recommends pcscd="${PCSCLITE_VERSION}" vsmartcard-vpcd="${VPCD_VERSION}" \
 && apt-get clean
USER vcard
# Debian's reader.conf.d/vpcd: vpcd listens on 0.0.0.0:35963-35964 of this container's network
# namespace; run it with network_mode: none (only lo), as docker-compose.yml does.
CMD ["pcscd", "--foreground"]

# What card and test share, and what changes rarely: Python, pcscd + vpcd, the dependencies.
FROM base AS runtime
ARG PCSCLITE_VERSION
ARG VPCD_VERSION
ARG PYTHON3_VERSION
RUN apt-get install -y -q --no-install-recommends python3="${PYTHON3_VERSION}" python3-venv="${PYTHON3_VERSION}" \
      pcscd="${PCSCLITE_VERSION}" vsmartcard-vpcd="${VPCD_VERSION}" \
 && apt-get clean && python3 -m venv /opt/vcard
COPY docker/wheels/deps /wheels/deps
RUN /opt/vcard/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /wheels/deps cryptography pyscard
ENV PATH=/opt/vcard/bin:$PATH VCARD_RUNTIME_DIR=/run/vcard VCARD_STATE_DIR=/var/lib/vcard

FROM runtime AS card
# vcard's own wheel last: a code change rebuilds only the layers from here on (seconds).
COPY docker/wheels/vcard /wheels/vcard
RUN /opt/vcard/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /wheels/deps /wheels/vcard/vcard-*.whl
COPY docker/entrypoint.py /usr/local/bin/vcard-entrypoint
USER vcard
ENTRYPOINT ["vcard-entrypoint"]
CMD ["card"]

FROM runtime AS test
ARG PCSC_TOOLS_VERSION
ARG OPENSC_VERSION
ARG YUBICO_PIV_TOOL_VERSION
ARG OPENSSL_VERSION
ARG IPROUTE2_VERSION
ARG PROCPS_VERSION
RUN apt-get install -y -q --no-install-recommends pcsc-tools="${PCSC_TOOLS_VERSION}" \
      opensc="${OPENSC_VERSION}" opensc-pkcs11="${OPENSC_VERSION}" yubico-piv-tool="${YUBICO_PIV_TOOL_VERSION}" \
      openssl="${OPENSSL_VERSION}" iproute2="${IPROUTE2_VERSION}" procps="${PROCPS_VERSION}" \
 && apt-get clean \
 && chown root:root /run/vcard /var/lib/vcard \
 && /opt/vcard/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /wheels/deps -r /wheels/deps/test-requirements.txt
COPY docker/wheels/vcard /wheels/vcard
RUN /opt/vcard/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check \
      --find-links /wheels/deps /wheels/vcard/vcard-*.whl
# The tests expect a developer checkout: the code under /src (some read its files), the venv at
# /src/.venv (the installed one; its .pth puts /src first on sys.path, as an editable install does).
WORKDIR /src
RUN ln -s /opt/vcard /src/.venv \
 && echo "import sys; sys.path.insert(0, '/src')" > /opt/vcard/lib/python3.11/site-packages/00-vcard-src.pth
COPY setup.cfg pyproject.toml /src/
COPY emulator /src/emulator
COPY minidriver /src/minidriver
COPY bench /src/bench
COPY tests /src/tests
# Root: the tests make private pcscd stacks in new network and mount namespaces (CAP_SYS_ADMIN).
ENV CI=true VCARD_RUNTIME_DIR= VCARD_STATE_DIR=
CMD ["python", "-m", "pytest", "-q", "tests/e2e"]
