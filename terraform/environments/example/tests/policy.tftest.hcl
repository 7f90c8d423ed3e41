# Plans and applies the example against a mock AWS provider (no account, no
# network) and checks the reachability policy of seed 002 on the resulting
# security group rules and instances.

mock_provider "aws" {
  source = "../../tests/aws-mock"
}

variables {
  operator_cidrs        = ["203.0.113.7/32", "198.51.100.0/24"]
  grafana_allowed_cidrs = ["0.0.0.0/0"]
  ssh_public_key        = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXJAdGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdA test@example"
  app_servers = {
    web-1 = {}
    web-2 = { public_tcp_ports = [80, 443] }
  }
}

run "exporter_and_shipper_admit_only_prometheus_and_operators" {
  command = apply

  # Every rule that opens node exporter's or the log shipper's port, wherever it is.
  assert {
    condition = alltrue([
      for r in concat(values(output.ingress_rules), flatten([for s in values(output.public_ingress_rules) : values(s)])) :
      r.security_group_id == output.security_group_ids["fleet"] && (
        r.referenced_security_group_id == output.security_group_ids["prometheus"] || contains(var.operator_cidrs, coalesce(r.cidr_ipv4, "-"))
      )
      if r.from_port <= 9100 && r.to_port >= 9100 || r.from_port <= 9080 && r.to_port >= 9080
    ])
    error_message = "a rule admits node exporter (9100) or the log shipper (9080) from something other than Prometheus' security group or operator_cidrs"
  }
  assert {
    condition = alltrue([for port in [9100, 9080] : length([
      for r in values(output.ingress_rules) : r if r.from_port == port && r.to_port == port
    ]) == 1 + length(var.operator_cidrs)])
    error_message = "ports 9100 and 9080 should each have exactly one rule from Prometheus and one per operator CIDR"
  }
  # The fleet group is on every server, so every server's exporter is covered.
  assert {
    condition     = alltrue([for name, m in module.server : contains(m.security_group_ids, output.security_group_ids["fleet"])])
    error_message = "a server does not carry the fleet security group"
  }
  # The only group that Prometheus' rules trust is carried by the Prometheus host alone.
  assert {
    condition     = [for name, m in module.server : name if contains(m.security_group_ids, output.security_group_ids["prometheus"])] == ["monitoring-1"]
    error_message = "the prometheus security group is on a server that does not run Prometheus"
  }
  # No rule anywhere is all-protocols (which would open every port); UDP only
  # for Alertmanager's cluster gossip.
  assert {
    condition     = alltrue([for r in values(output.ingress_rules) : r.ip_protocol == "tcp" || (r.ip_protocol == "udp" && r.from_port == 9094 && r.to_port == 9094)])
    error_message = "an ingress rule is neither TCP nor Alertmanager's UDP gossip"
  }
}

run "prometheus_and_alertmanager_admit_only_grafana_and_operators" {
  command = apply

  assert {
    condition = alltrue([
      for r in values(output.ingress_rules) :
      r.security_group_id == output.security_group_ids["prometheus"] && (
        contains([output.security_group_ids["grafana"], output.security_group_ids["prometheus"]], coalesce(r.referenced_security_group_id, "-")) || contains(var.operator_cidrs, coalesce(r.cidr_ipv4, "-"))
      )
      if r.from_port <= 9090 && r.to_port >= 9090
    ])
    error_message = "Prometheus (9090) admits something other than Grafana, its replicas and operator_cidrs"
  }
  # Alertmanager also takes Prometheus' alerts: without that no alert is ever delivered.
  assert {
    condition = alltrue([
      for r in values(output.ingress_rules) :
      r.security_group_id == output.security_group_ids["alertmanager"] && (
        contains([output.security_group_ids["grafana"], output.security_group_ids["prometheus"]], coalesce(r.referenced_security_group_id, "-")) || contains(var.operator_cidrs, coalesce(r.cidr_ipv4, "-"))
      )
      if r.from_port <= 9093 && r.to_port >= 9093
    ])
    error_message = "Alertmanager (9093) admits something other than Grafana, Prometheus and operator_cidrs"
  }
  assert {
    condition = length([
      for r in values(output.ingress_rules) : r if r.to_port == 9090 && r.referenced_security_group_id == output.security_group_ids["grafana"]
    ]) == 1
    error_message = "Grafana cannot reach Prometheus"
  }
  # Alertmanager's cluster port: only its peers (the alertmanager group), never a CIDR.
  assert {
    condition = alltrue([
      for r in values(output.ingress_rules) :
      r.security_group_id == output.security_group_ids["alertmanager"] && r.referenced_security_group_id == output.security_group_ids["alertmanager"] && r.cidr_ipv4 == null
      if r.from_port <= 9094 && r.to_port >= 9094
    ])
    error_message = "Alertmanager's cluster port 9094 must be open to the Alertmanager peers only"
  }
}

run "only_grafana_and_app_ports_face_the_internet" {
  command = apply

  # Any CIDR source that is not an operator's is Grafana's port from grafana_allowed_cidrs.
  assert {
    condition = alltrue([
      for r in values(output.ingress_rules) :
      r.to_port == 3000 && r.from_port == 3000 && contains(var.grafana_allowed_cidrs, r.cidr_ipv4)
      if r.cidr_ipv4 != null && !contains(var.operator_cidrs, coalesce(r.cidr_ipv4, "-"))
    ])
    error_message = "a monitoring rule admits a CIDR that is not an operator's, other than Grafana's"
  }
  assert {
    condition = alltrue([
      for r in values(output.ingress_rules) : contains(var.operator_cidrs, r.cidr_ipv4)
      if r.to_port == 22 && r.cidr_ipv4 != null
    ])
    error_message = "SSH is open to more than operator_cidrs"
  }
  assert {
    condition     = length([for r in values(output.ingress_rules) : r if r.cidr_ipv4 == "0.0.0.0/0"]) == 1
    error_message = "exactly one monitoring rule (Grafana) should face the whole internet"
  }
  # The application's own ports exist only where asked for.
  assert {
    condition     = length(output.public_ingress_rules["web-1"]) == 0 && length(output.public_ingress_rules["monitoring-1"]) == 0
    error_message = "a server without public_tcp_ports got public rules"
  }
  assert {
    condition     = toset(keys(output.public_ingress_rules["web-2"])) == toset(["443/0.0.0.0/0", "80/0.0.0.0/0"])
    error_message = "web-2 should have exactly its ports 80 and 443 open to the internet"
  }
  # Egress to the internet only on the listed ports; everything else stays in the VPC.
  assert {
    condition     = toset([for r in values(module.firewall.egress_rules) : r.cidr_ipv4 == "0.0.0.0/0" ? "${r.ip_protocol}/${r.to_port}" : "vpc/${r.ip_protocol}"]) == toset(["tcp/443", "tcp/80", "vpc/-1"])
    error_message = "egress should be: anything inside the VPC, TCP 80 and 443 to the internet"
  }
}

run "grafana_for_operators_only_when_no_cidrs_given" {
  command = apply

  variables {
    grafana_allowed_cidrs = []
  }

  assert {
    condition     = length([for r in values(output.ingress_rules) : r if r.cidr_ipv4 != null && !contains(var.operator_cidrs, coalesce(r.cidr_ipv4, "-"))]) == 0
    error_message = "with grafana_allowed_cidrs empty, only operator CIDRs may appear in monitoring rules"
  }
  assert {
    condition     = length([for r in values(output.ingress_rules) : r if r.to_port == 3000 && r.cidr_ipv4 != null]) == length(var.operator_cidrs)
    error_message = "Grafana should admit exactly the operator CIDRs"
  }
}

run "instances_are_hardened" {
  command = apply

  assert {
    condition     = alltrue([for m in module.server : m.instance.metadata_options[0].http_tokens == "required"])
    error_message = "an instance does not require IMDSv2"
  }
  assert {
    condition     = alltrue([for m in module.server : m.instance.root_block_device[0].encrypted])
    error_message = "an instance has an unencrypted root volume"
  }
  assert {
    condition     = alltrue([for m in module.server : m.instance.key_name == aws_key_pair.operators.key_name])
    error_message = "an instance does not carry the operators' SSH key"
  }
  assert {
    condition     = alltrue([for m in module.server : m.instance.ami == "ami-0123456789abcdef0"])
    error_message = "instances should boot the Debian AMI found by the data source"
  }
  assert {
    condition     = length(module.network.default_security_group.ingress) == 0 && length(module.network.default_security_group.egress) == 0
    error_message = "the VPC's default security group must have no rules"
  }
}
