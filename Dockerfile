# Build, with the version the binary reports (.git is not in the context):
#   docker build --build-arg VERSION=$(git describe --tags --always --dirty) -t clickgate .
# Run:
#   docker run -d --name clickgate --stop-timeout 20 \
#     -p 8080:8080 -p 127.0.0.1:8081:8081 -v clickgate-data:/data clickgate
#
# 8080 is the public listener, the only one for the internet. 8081 is the
# admin API (the admin token's, and the app backend's conversions): for
# operators only. It listens on 0.0.0.0 inside the container so that it can
# be published at all; publish it on the host's loopback (as above) or a
# private network, never on 0.0.0.0. The same holds for every operator
# listener the service gains (a dashboard): publish none of them publicly.
#
# --stop-timeout 20 (compose: stop_grace_period: 20s): docker stop sends
# STOPSIGNAL, then SIGKILL after 10 s by default, which is shorter than
# --shutdown-timeout (15 s) in which the node finishes its requests, commits
# or spools what is queued and flushes its ledger. Keep it above.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/clickgate ./cmd/clickgate

# Alpine 3.23: supported until November 2027. Alpine rather than
# distroless for wget, which the healthchecks run.
FROM alpine:3.23
COPY --from=build /out/clickgate /usr/local/bin/clickgate
RUN adduser -D -H -u 10001 clickgate && mkdir /data && chown clickgate /data
USER clickgate
VOLUME /data
EXPOSE 8080 8081
ENV CLICKGATE_DATA=/data CLICKGATE_ADMIN_LISTEN=0.0.0.0:8081
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=10s --timeout=2s --retries=3 CMD wget -qO- http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["clickgate"]
CMD ["serve"]
