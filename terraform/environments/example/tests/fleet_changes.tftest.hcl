# Servers are added and removed one by one: each run applies on top of the
# state the previous run left. A mock provider plans no replacement by itself
# (it does not know which attributes force one), so "left alone" is checked as
# "every attribute of every existing resource is the same as before": then the
# real provider plans neither an update nor a replacement either.

mock_provider "aws" {
  source = "../../tests/aws-mock"
}

variables {
  operator_cidrs = ["203.0.113.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXJAdGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdA test@example"
  app_servers = {
    web-1 = {}
    web-2 = {}
  }
}

run "two_app_servers" {
  command = apply

  assert {
    condition     = toset(keys(output.servers)) == toset(["web-1", "web-2", "monitoring-1"])
    error_message = "expected web-1, web-2 and the monitoring server"
  }
}

run "adding_a_server_adds_one_instance_and_its_rules" {
  command = apply

  variables {
    app_servers = {
      web-1 = {}
      web-2 = {}
      web-3 = { public_tcp_ports = [443] }
    }
  }

  assert {
    condition     = length(output.servers) == length(run.two_app_servers.servers) + 1
    error_message = "adding web-3 should add exactly one server"
  }
  assert {
    condition     = alltrue([for name, i in run.two_app_servers.instances : output.instances[name] == i])
    error_message = "adding web-3 changed an existing instance"
  }
  # The policy rules are per security group, not per server: none is added or replaced...
  assert {
    condition     = output.ingress_rules == run.two_app_servers.ingress_rules
    error_message = "adding web-3 changed the monitoring policy's rules"
  }
  assert {
    condition     = output.security_group_ids == run.two_app_servers.security_group_ids
    error_message = "adding web-3 replaced a security group"
  }
  # ...the new server carries the fleet group, so Prometheus scrapes it and nobody else does...
  assert {
    condition     = contains(module.server["web-3"].security_group_ids, output.security_group_ids["fleet"]) && !contains(module.server["web-3"].security_group_ids, output.security_group_ids["prometheus"])
    error_message = "web-3 should carry the fleet group and no monitoring component's group"
  }
  # ...and its own application port is its only new rule.
  assert {
    condition     = toset(keys(output.public_ingress_rules["web-3"])) == toset(["443/0.0.0.0/0"]) && alltrue([for name, rules in output.public_ingress_rules : length(rules) == 0 if name != "web-3"])
    error_message = "web-3 should bring exactly its one public rule (443) and no other server any"
  }
  assert {
    condition     = output.ansible_inventory.app_servers.hosts == tolist(["web-1", "web-2", "web-3"])
    error_message = "web-3 is missing from the app_servers inventory group"
  }
}

run "removing_a_server_removes_only_that_one" {
  command = apply

  variables {
    app_servers = {
      web-2 = {}
      web-3 = { public_tcp_ports = [443] }
    }
  }

  assert {
    condition     = toset(keys(output.servers)) == toset(["web-2", "web-3", "monitoring-1"])
    error_message = "web-1 should be gone and nothing else"
  }
  assert {
    condition = alltrue([
      for name, i in run.adding_a_server_adds_one_instance_and_its_rules.instances :
      output.instances[name] == i if name != "web-1"
    ])
    error_message = "removing web-1 changed another instance"
  }
  assert {
    condition     = output.ingress_rules == run.two_app_servers.ingress_rules && output.public_ingress_rules["web-3"] == run.adding_a_server_adds_one_instance_and_its_rules.public_ingress_rules["web-3"]
    error_message = "removing web-1 changed the monitoring policy's rules or web-3's"
  }
}

run "adding_an_operator_adds_one_rule_per_service" {
  command = apply

  variables {
    app_servers = {
      web-2 = {}
      web-3 = { public_tcp_ports = [443] }
    }
    operator_cidrs = ["203.0.113.7/32", "192.0.2.0/28"]
  }

  assert {
    condition     = toset([for k, r in output.ingress_rules : k if !contains(keys(run.two_app_servers.ingress_rules), k)]) == toset([for s in ["fleet/ssh", "fleet/node_exporter", "fleet/log_shipper", "prometheus/prometheus", "alertmanager/alertmanager", "loki/loki", "grafana/grafana", "victoriametrics/victoriametrics"] : "${s}/192.0.2.0/28"])
    error_message = "a new operator CIDR should add exactly one rule for each of the 8 services open to operators (not Alertmanager's cluster port)"
  }
  assert {
    condition     = alltrue([for k, r in run.two_app_servers.ingress_rules : output.ingress_rules[k] == r])
    error_message = "adding an operator CIDR changed an existing rule"
  }
}
