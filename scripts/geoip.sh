#!/usr/bin/env bash
# Fetches free GeoIP data for trying rejectwatch and for its demos (never
# commit it): ip-location-db's CC0 country database (MaxMind DB format) and
# its CC-BY-4.0 ASN ranges (CSV), both from the npm registry with `npm pack`.
#   scripts/geoip.sh [DIR]     default: ~/.cache/rejectwatch/geoip
# then: rejectwatch analyze LOG --geoip-country DIR/country.mmdb --geoip-asn DIR/asn.csv
set -euo pipefail
dest=${1:-${XDG_CACHE_HOME:-$HOME/.cache}/rejectwatch/geoip}
command -v npm >/dev/null || { echo "geoip.sh: npm is needed (apt-get install npm)" >&2; exit 1; }
mkdir -p "$dest"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
npm pack --silent @ip-location-db/geo-whois-asn-country-mmdb >/dev/null
npm pack --silent @ip-location-db/asn >/dev/null
tar xzf ip-location-db-geo-whois-asn-country-mmdb-*.tgz package/geo-whois-asn-country.mmdb
mv package/geo-whois-asn-country.mmdb "$dest/country.mmdb.tmp" && mv "$dest/country.mmdb.tmp" "$dest/country.mmdb"
tar xzf ip-location-db-asn-*.tgz package/asn-ipv4.csv package/asn-ipv6.csv package/ROUTEVIEWS-LICENSE package/DBIP-LICENSE
cat package/asn-ipv4.csv package/asn-ipv6.csv > "$dest/asn.csv.tmp" && mv "$dest/asn.csv.tmp" "$dest/asn.csv"
cp package/*LICENSE "$dest/"
echo "geoip.sh: $dest/country.mmdb and $dest/asn.csv (CC0 and CC-BY-4.0; see the LICENSE files there)"
