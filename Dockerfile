# Build: docker build -t clickgate .
# Run:   docker run -p 8080:8080 -v clickgate-data:/data clickgate
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/clickgate ./cmd/clickgate

FROM alpine:3.20
COPY --from=build /out/clickgate /usr/local/bin/clickgate
RUN adduser -D -H -u 10001 clickgate && mkdir /data && chown clickgate /data
USER clickgate
VOLUME /data
# 8080 public redirects; 8081 admin API (published only where operators reach it).
EXPOSE 8080 8081
ENV CLICKGATE_DATA=/data CLICKGATE_ADMIN_LISTEN=0.0.0.0:8081
HEALTHCHECK --interval=10s --timeout=2s --retries=3 CMD wget -qO- http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["clickgate"]
CMD ["serve"]
