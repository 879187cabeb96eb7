# ipnlab from scratch: no base image is pulled. `make image` builds the
# static binary into build/image/ first and uses that folder as the context.
FROM scratch
COPY ipnlab /ipnlab
# A writable folder for --store sqlite:/data/emulator.db and listener
# databases (scratch has no /tmp).
COPY --chown=65534:65534 data/ /data/
USER 65534:65534
WORKDIR /data
EXPOSE 8700
HEALTHCHECK --interval=2s --timeout=2s --start-period=1s CMD ["/ipnlab", "healthz"]
ENTRYPOINT ["/ipnlab"]
CMD ["serve", "--emulator-addr", "127.0.0.1:8700"]
