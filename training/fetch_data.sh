#!/usr/bin/env bash
# Fetch the training sources (Debian packages only; nothing else is downloaded) and say where
# they landed and under which licence. Needs root (apt-get); run once per machine.
#
#   package                    what                                         licence (debian/copyright)
#   oxygen-icon-theme          ~600 realistic device/app/place icons, 256 px, LGPL-3+
#                              soft alpha
#   tuxpaint-stamps-default    ~800 stamps, many photographic cut-outs       GPL-2 (images: GPL-2 / CC)
#   lomiri-wallpapers-16.04    high-resolution photos (backgrounds)          CC-BY-SA-4.0 / CC-BY-4.0
#   mate-backgrounds           photos and abstract backgrounds               GPL-2+ / CC-BY-SA-3.0
#   sweethome3d-furniture      ~820 textured 3D products (OBJ), rendered     CC0 / CC-BY-3.0
#                              to RGBA by render_furniture.py
#   blender                    the renderer (Cycles, CPU)                    GPL-2+ (tool only)
#
# The trained weights are a derivative work of these images: see engine/weights/MODEL_CARD.md.
set -euo pipefail
PACKAGES=(oxygen-icon-theme tuxpaint-stamps-default lomiri-wallpapers-16.04 mate-backgrounds
          sweethome3d-furniture blender)
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); else SUDO=(); fi
"${SUDO[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${PACKAGES[@]}"
for pkg in "${PACKAGES[@]}"; do
    licences=$(grep -h '^License:' "/usr/share/doc/$pkg/copyright" | sort -u | cut -d' ' -f2- | paste -sd, -)
    echo "$pkg: $licences"
done
O=/usr/share/icons/oxygen/base/256x256
cat <<PATHS
foregrounds: $O/devices $O/apps $O/places $O/mimetypes /usr/share/tuxpaint/stamps
             runs/renders (training/render_furniture.py, from /usr/share/sweethome3d/furniture)
backgrounds: /usr/share/backgrounds
PATHS
