mock_provider "aws" {
  source = "../../tests/aws-mock"
}

variables {
  name           = "fw-test"
  vpc_id         = "vpc-0123456789abcdef0"
  vpc_cidr       = "10.42.0.0/16"
  operator_cidrs = ["203.0.113.7/32"]
}

run "every_service_admits_exactly_its_sources" {
  command = apply

  # group/service => sources, spelt as the rule keys are.
  assert {
    condition = toset(keys(output.ingress_rules)) == toset([
      "fleet/ssh/203.0.113.7/32",
      "fleet/node_exporter/sg:prometheus", "fleet/node_exporter/203.0.113.7/32",
      "fleet/log_shipper/sg:prometheus", "fleet/log_shipper/203.0.113.7/32",
      "prometheus/prometheus/sg:grafana", "prometheus/prometheus/sg:prometheus", "prometheus/prometheus/203.0.113.7/32",
      "alertmanager/alertmanager/sg:prometheus", "alertmanager/alertmanager/sg:grafana", "alertmanager/alertmanager/203.0.113.7/32",
      "alertmanager/alertmanager_cluster/sg:alertmanager", "alertmanager/alertmanager_cluster/udp/sg:alertmanager",
      "loki/loki/sg:fleet", "loki/loki/203.0.113.7/32",
      "grafana/grafana/sg:prometheus", "grafana/grafana/203.0.113.7/32",
      "victoriametrics/victoriametrics/sg:prometheus", "victoriametrics/victoriametrics/sg:grafana",
      "victoriametrics/victoriametrics/203.0.113.7/32",
    ])
    error_message = "the set of rules differs from the policy"
  }
  # Keys are group/service[/protocol]/source; TCP is the protocol when none is spelt.
  assert {
    condition = alltrue([
      for k, r in output.ingress_rules :
      r.security_group_id == output.security_group_ids[split("/", k)[0]] && (
        startswith([for part in split("/", k) : part if part != "udp"][2], "sg:")
        ? r.referenced_security_group_id == output.security_group_ids[trimprefix([for part in split("/", k) : part if part != "udp"][2], "sg:")] && r.cidr_ipv4 == null
        : r.cidr_ipv4 == join("/", slice([for part in split("/", k) : part if part != "udp"], 2, 4)) && r.referenced_security_group_id == null
      ) && r.ip_protocol == (contains(split("/", k), "udp") ? "udp" : "tcp")
    ])
    error_message = "a rule is on the wrong group, admits a different source or protocol than its key says"
  }
  assert {
    condition = alltrue([
      for k, r in output.ingress_rules : r.from_port == r.to_port && r.to_port == lookup(
        { ssh = 22, node_exporter = 9100, log_shipper = 9080, prometheus = 9090, alertmanager = 9093, loki = 3100, grafana = 3000, alertmanager_cluster = 9094, victoriametrics = 8428 },
      split("/", k)[1])
    ])
    error_message = "a rule opens another port than its service's upstream default"
  }
  assert {
    condition     = alltrue([for r in values(output.ingress_rules) : r.description != null && r.description != ""])
    error_message = "every rule needs a description"
  }
}

run "ports_move_the_rules" {
  command = apply
  variables {
    ports = { node_exporter = 9101 }
  }

  assert {
    condition     = length([for r in values(output.ingress_rules) : r if r.to_port == 9100]) == 0 && length([for r in values(output.ingress_rules) : r if r.to_port == 9101]) == 2
    error_message = "ports.node_exporter = 9101 should move both node exporter rules to 9101"
  }
}

run "grafana_allowed_cidrs_open_grafana_only" {
  command = apply
  variables {
    grafana_allowed_cidrs = ["0.0.0.0/0", "203.0.113.7/32"]
  }

  assert {
    condition     = toset([for k, r in output.ingress_rules : k if r.cidr_ipv4 == "0.0.0.0/0"]) == toset(["grafana/grafana/0.0.0.0/0"])
    error_message = "0.0.0.0/0 should reach Grafana and nothing else"
  }
  assert {
    condition     = length([for k, r in output.ingress_rules : k if startswith(k, "grafana/") && r.cidr_ipv4 == "203.0.113.7/32"]) == 1
    error_message = "a CIDR that is both operator and grafana_allowed should give one Grafana rule, not a duplicate"
  }
}

run "operator_cidrs_rejects_the_whole_internet" {
  command = plan
  variables {
    operator_cidrs = ["0.0.0.0/0"]
  }
  expect_failures = [var.operator_cidrs]
}

run "operator_cidrs_rejects_a_non_cidr" {
  command = plan
  variables {
    operator_cidrs = ["203.0.113.7"]
  }
  expect_failures = [var.operator_cidrs]
}

run "operator_cidrs_rejects_host_bits" {
  command = plan
  variables {
    operator_cidrs = ["203.0.113.7/24"]
  }
  expect_failures = [var.operator_cidrs]
}

run "operator_cidrs_rejects_empty" {
  command = plan
  variables {
    operator_cidrs = []
  }
  expect_failures = [var.operator_cidrs]
}

run "grafana_allowed_cidrs_rejects_a_non_cidr" {
  command = plan
  variables {
    grafana_allowed_cidrs = ["everyone"]
  }
  expect_failures = [var.grafana_allowed_cidrs]
}

run "ports_must_differ" {
  command = plan
  variables {
    ports = { prometheus = 3000 }
  }
  expect_failures = [var.ports]
}

run "ports_must_be_tcp_ports" {
  command = plan
  variables {
    ports = { grafana = 70000 }
  }
  expect_failures = [var.ports]
}

run "egress_ports_must_be_tcp_ports" {
  command = plan
  variables {
    internet_egress_tcp_ports = [0]
  }
  expect_failures = [var.internet_egress_tcp_ports]
}
