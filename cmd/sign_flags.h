// The signing flags build and sign share (skopeo's names), and the step that
// signs a pushed image and records it in publish-metadata.json (cmd/sign.cc).
#pragma once

#include <optional>
#include <string>

#include <CLI/CLI.hpp>

#include "engine/sign.h"
#include "engine/sign_key.h"
#include "oci/error.h"
#include "oci/image.h"
#include "oci/store.h"

namespace mc::cmd {

struct SignFlags {
  std::string key;              // --sign-by-sigstore-private-key
  std::string passphrase_file;  // --sign-passphrase-file
  bool sign_all = false;        // --sign-all
  bool requested() const { return !key.empty(); }
};

void AddSignFlags(CLI::App* cmd, SignFlags& flags);

// The key, read before anything is built or pushed (a wrong passphrase fails
// first, exit 2); nullopt when no key is given.
oci::Result<std::optional<engine::SigningKey>> LoadSignKey(const SignFlags& flags);

// Signs `image` at `dest` (a docker:// destination; anything else is
// kInvalidInput), adds image.signatures[] to `metadata` when given, and
// reports each signature on stderr.
oci::Result<std::vector<engine::SignatureRecord>> SignPushed(oci::ImageDestination& dest,
                                                             const oci::RawManifest& image,
                                                             const engine::SigningKey& key,
                                                             const SignFlags& flags,
                                                             const std::string& metadata);

}  // namespace mc::cmd
