# Shared by the image build scripts (sourced, not run): picks the Debian bookworm base image.
#
# ensure_debian_base sets BASE to the public debian:bookworm-slim if it can be pulled (or is
# already present locally); otherwise to a registry-free base made with debootstrap and
# imported as handoff-base:bookworm, so only the Debian and npm package mirrors need to be
# reachable. The debootstrap step needs root.
#
# It also gives image_exists and build_ca_file to both scripts.
#
# The caller defines log and die, and SCRIPT_PATH (named in the hint to
# re-run as root); it may set FORCE=1 (passed on in that hint), BASE_RERUN_ENV (extra
# `NAME=value ` words for it) and HANDOFF_DEBIAN_MIRROR.

: "${PUBLIC_BASE:=debian:bookworm-slim}"
: "${LOCAL_BASE:=handoff-base:bookworm}"
: "${SUITE:=bookworm}"
: "${DEFAULT_MIRROR:=http://deb.debian.org/debian}"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

# The PEM bundle npm trusts in a throwaway build stage (never in the final image):
# HANDOFF_BUILD_CA_FILE when it is set (empty: none), else this machine's system bundle,
# so builds behind a TLS-inspecting proxy work.
build_ca_file() {
  if [[ -v HANDOFF_BUILD_CA_FILE ]]; then
    printf '%s' "$HANDOFF_BUILD_CA_FILE"
  elif [[ -r /etc/ssl/certs/ca-certificates.crt ]]; then
    printf '%s' /etc/ssl/certs/ca-certificates.crt
  fi
}

# First Debian mirror configured for apt on this machine (deb822 .sources or
# one-line sources.list), ignoring the security archive and non-Debian repos.
detect_mirror() {
  local f uri
  local -a files=()
  [[ -f /etc/apt/sources.list ]] && files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -f "$f" ]] && files+=("$f")
  done
  for f in "${files[@]}"; do
    if [[ "$f" == *.sources ]]; then
      uri="$(awk 'tolower($1) == "uris:" { for (i = 2; i <= NF; i++) print $i }' "$f")"
    else
      # deb [options] URI suite components...
      uri="$(awk '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ } print $i }' "$f")"
    fi
    while IFS= read -r uri; do
      uri="${uri%/}"
      if [[ "$uri" =~ ^https?://[^[:space:]]+/debian$ ]]; then
        printf '%s\n' "$uri"
        return 0
      fi
    done <<<"$uri"
  done
  printf '%s\n' "$DEFAULT_MIRROR"
}

build_local_base() {
  local mirror rootfs
  mirror="${HANDOFF_DEBIAN_MIRROR:-$(detect_mirror)}"
  mirror="${mirror%/}"

  if [[ "$(id -u)" -ne 0 ]]; then
    log "the registry-free base ($LOCAL_BASE) must be created with debootstrap, which needs root."
    log "run this instead:"
    printf '\n  sudo %sHANDOFF_DEBIAN_MIRROR=%q %q%s\n\n' \
      "${BASE_RERUN_ENV:-}" "$mirror" "$SCRIPT_PATH" "$([[ "${FORCE:-0}" -eq 1 ]] && echo ' --force')"
    exit 1
  fi
  command -v debootstrap >/dev/null 2>&1 || die "debootstrap not found (apt-get install -y debootstrap)"

  rootfs="$(mktemp -d /var/tmp/handoff-base.XXXXXX)"
  # shellcheck disable=SC2064
  trap "rm -rf --one-file-system '$rootfs'" EXIT

  log "debootstrap --variant=minbase $SUITE from $mirror (this takes a few minutes)"
  local t0=$SECONDS
  debootstrap --variant=minbase "$SUITE" "$rootfs" "$mirror"
  log "debootstrap finished in $((SECONDS - t0))s"

  log "configuring and trimming the base"
  printf 'deb %s %s main\n' "$mirror" "$SUITE" >"$rootfs/etc/apt/sources.list"
  rm -f "$rootfs"/etc/apt/sources.list.d/*
  # Same housekeeping as the official slim images: no docs, no .deb cache.
  printf '%s\n' \
    'path-exclude /usr/share/doc/*' \
    'path-include /usr/share/doc/*/copyright' \
    'path-exclude /usr/share/man/*' \
    'path-exclude /usr/share/info/*' \
    'path-exclude /usr/share/groff/*' \
    'path-exclude /usr/share/lintian/*' \
    'path-exclude /usr/share/linda/*' \
    >"$rootfs/etc/dpkg/dpkg.cfg.d/01-handoff-nodoc"
  printf '%s\n' \
    'APT::Install-Recommends "false";' \
    'APT::Install-Suggests "false";' \
    >"$rootfs/etc/apt/apt.conf.d/01-handoff-norecommends"
  rm -rf "$rootfs"/var/lib/apt/lists/* \
         "$rootfs"/var/cache/apt/*.bin \
         "$rootfs"/var/cache/apt/archives/*.deb \
         "$rootfs"/var/cache/apt/archives/partial/* \
         "$rootfs"/var/log/*.log "$rootfs"/var/log/apt/* \
         "$rootfs"/var/cache/debconf/*-old "$rootfs"/var/lib/dpkg/*-old \
         "$rootfs"/tmp/* "$rootfs"/var/tmp/*
  find "$rootfs/usr/share/doc" -mindepth 1 ! -name copyright ! -type d -delete 2>/dev/null || true
  find "$rootfs/usr/share/doc" -mindepth 1 -type d -empty -delete 2>/dev/null || true
  rm -rf "$rootfs"/usr/share/man/* "$rootfs"/usr/share/info/*
  : >"$rootfs/etc/hostname"
  : >"$rootfs/etc/resolv.conf"

  log "importing the root filesystem as $LOCAL_BASE"
  tar --numeric-owner --xattrs -C "$rootfs" -c . \
    | docker import \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["bash"]' \
        --message "debootstrap --variant=minbase $SUITE $mirror" \
        - "$LOCAL_BASE" >/dev/null

  rm -rf --one-file-system "$rootfs"
  trap - EXIT
  log "created $LOCAL_BASE"
}

ensure_debian_base() {
  BASE=""
  log "trying to pull $PUBLIC_BASE"
  if timeout 60 docker pull "$PUBLIC_BASE" >/dev/null 2>&1; then
    BASE="$PUBLIC_BASE"
    log "pulled $PUBLIC_BASE"
  elif image_exists "$PUBLIC_BASE"; then
    BASE="$PUBLIC_BASE"
    log "pull failed; using the $PUBLIC_BASE already present locally"
  else
    log "pull failed (no registry reachable?); using the registry-free base $LOCAL_BASE"
    if image_exists "$LOCAL_BASE"; then
      log "$LOCAL_BASE already exists; reusing it"
    else
      build_local_base
    fi
    BASE="$LOCAL_BASE"
  fi
}
