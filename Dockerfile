# syntax=docker/dockerfile:1
# flashsale: one static binary (serve, migrate, token). Built and run by compose.yaml.

FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o /out/flashsale ./cmd/flashsale

# alpine rather than distroless: busybox wget serves the compose healthcheck on /readyz.
FROM alpine:3.20
RUN addgroup -S -g 10001 flashsale \
    && adduser -S -D -H -u 10001 -G flashsale -s /sbin/nologin flashsale
COPY --from=build /out/flashsale /usr/local/bin/flashsale
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/flashsale"]
CMD ["serve"]
