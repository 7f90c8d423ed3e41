#!/bin/sh
# Ansible dynamic inventory from Terraform's outputs:
#   ansible-playbook -i terraform/inventory.sh ansible/site.yml
# TF_ENVIRONMENT picks the root under terraform/environments/ (default: example).
# Ansible calls it with --list (all groups and, in _meta, every host's vars) and,
# never in practice since _meta is given, with --host NAME.
set -eu
dir="$(cd "$(dirname "$0")" && pwd)/environments/${TF_ENVIRONMENT:-example}"
case "${1:---list}" in
  --list) exec terraform -chdir="$dir" output -json ansible_inventory ;;
  --host) echo '{}' ;;
  *) echo "usage: $0 --list | --host NAME" >&2; exit 2 ;;
esac
