# The monitoring components on one server (the default) or one server each, and
# the Ansible inventory the outputs give for both.

mock_provider "aws" {
  source = "../../tests/aws-mock"
}

variables {
  operator_cidrs = ["203.0.113.7/32"]
  ssh_public_key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHVzZXJAdGVzdGtleXRlc3RrZXl0ZXN0a2V5dGVzdA test@example"
  app_servers    = { web-1 = {} }
}

run "one_monitoring_server_is_in_every_monitoring_group" {
  command = apply

  assert {
    condition = alltrue([
      for g in ["monitoring", "prometheus", "alertmanager", "grafana", "loki"] :
      output.ansible_inventory[g].hosts == tolist(["monitoring-1"])
    ])
    error_message = "monitoring-1 should be the only host of monitoring, prometheus, alertmanager, grafana and loki"
  }
  assert {
    condition     = output.ansible_inventory.app_servers.hosts == tolist(["web-1"])
    error_message = "app_servers should hold web-1 only"
  }
  assert {
    condition     = toset(output.ansible_inventory.all.children) == toset(["app_servers", "monitoring", "prometheus", "alertmanager", "grafana", "loki", "victoriametrics"])
    error_message = "all.children should list the seven groups the Ansible roles use"
  }
  assert {
    condition = alltrue([
      for name, s in output.servers :
      output.ansible_inventory._meta.hostvars[name].ansible_host == s.public_ip &&
      output.ansible_inventory._meta.hostvars[name].private_ip == s.private_ip &&
      output.ansible_inventory._meta.hostvars[name].ansible_user == "admin"
    ])
    error_message = "hostvars should give each server's public address as ansible_host and its private address as private_ip"
  }
  # The YAML inventory says the same as the JSON one.
  assert {
    condition = alltrue([
      for g in ["app_servers", "monitoring", "prometheus", "alertmanager", "grafana", "loki"] :
      toset(keys(yamldecode(output.ansible_inventory_yaml).all.children[g].hosts)) == toset(output.ansible_inventory[g].hosts)
    ])
    error_message = "the YAML inventory's groups differ from the JSON inventory's"
  }
  assert {
    condition     = yamldecode(output.ansible_inventory_yaml).all.hosts["web-1"].ansible_host == output.servers["web-1"].public_ip
    error_message = "the YAML inventory lacks web-1's ansible_host"
  }
  # One server carries every component's group, and the tags name its groups.
  assert {
    condition     = length(module.server["monitoring-1"].security_group_ids) == 5
    error_message = "the monitoring server should carry the fleet group and the four component groups"
  }
  assert {
    condition     = module.server["monitoring-1"].instance.tags["AnsibleGroups"] == "monitoring,prometheus,alertmanager,grafana,loki" && module.server["web-1"].instance.tags["AnsibleGroups"] == "app_servers"
    error_message = "the AnsibleGroups tags (for the aws_ec2 inventory plugin) are wrong"
  }
}

run "one_server_per_component" {
  command = apply

  variables {
    monitoring_servers = {
      prom  = { components = ["prometheus"] }
      alert = { components = ["alertmanager"], instance_type = "t3.small" }
      graf  = { components = ["grafana"], instance_type = "t3.small" }
      logs  = { components = ["loki"] }
    }
  }

  assert {
    condition = (
      output.ansible_inventory.prometheus.hosts == tolist(["prom"]) &&
      output.ansible_inventory.alertmanager.hosts == tolist(["alert"]) &&
      output.ansible_inventory.grafana.hosts == tolist(["graf"]) &&
      output.ansible_inventory.loki.hosts == tolist(["logs"]) &&
      output.ansible_inventory.monitoring.hosts == tolist(["alert", "graf", "logs", "prom"])
    )
    error_message = "each component's group should hold exactly its own server"
  }
  assert {
    condition     = module.server["alert"].instance.instance_type == "t3.small" && module.server["prom"].instance.instance_type == "t3.medium"
    error_message = "instance types from monitoring_servers are not applied"
  }
  # Each component's group is on its own server only.
  assert {
    condition = alltrue([
      for host, component in { prom = "prometheus", alert = "alertmanager", graf = "grafana", logs = "loki" } :
      [for name, m in module.server : name if contains(m.security_group_ids, output.security_group_ids[component])] == [host]
    ])
    error_message = "a component's security group is on a server that does not run it"
  }
  # The Prometheus-only rules of the exporters now admit the prom server alone:
  # Grafana, Loki and Alertmanager servers cannot scrape the fleet.
  assert {
    condition = toset([
      for r in values(output.ingress_rules) : r.referenced_security_group_id if r.to_port == 9100 && r.referenced_security_group_id != null
    ]) == toset([output.security_group_ids["prometheus"]])
    error_message = "node exporter should trust Prometheus' group only"
  }
}

# Issue 19: two Prometheus replicas, three Alertmanager peers, one VictoriaMetrics.
run "highly_available_layout" {
  command = apply

  variables {
    monitoring_servers = {
      mon-1  = { components = ["prometheus", "alertmanager", "grafana", "loki"] }
      mon-2  = { components = ["prometheus", "alertmanager"] }
      tsdb-1 = { components = ["alertmanager", "victoriametrics"] }
    }
  }

  assert {
    condition = (output.ansible_inventory.prometheus.hosts == tolist(["mon-1", "mon-2"])
      && output.ansible_inventory.alertmanager.hosts == tolist(["mon-1", "mon-2", "tsdb-1"])
    && output.ansible_inventory.victoriametrics.hosts == tolist(["tsdb-1"]))
    error_message = "the inventory should hold both replicas, the three peers and the store"
  }
  # Gossip: TCP and UDP, from the peers' own group, and from nothing else.
  assert {
    condition = toset([for k, r in output.ingress_rules : "${r.ip_protocol}:${r.referenced_security_group_id}" if r.from_port == 9094]) == toset([
      "tcp:${output.security_group_ids["alertmanager"]}", "udp:${output.security_group_ids["alertmanager"]}"
    ])
    error_message = "port 9094 should be open over TCP and UDP to the alertmanager group only"
  }
  assert {
    condition = alltrue([
      for r in values(output.ingress_rules) : r.security_group_id == output.security_group_ids["alertmanager"] && r.cidr_ipv4 == null
      if r.from_port == 9094
    ])
    error_message = "port 9094 should be opened on the alertmanager group only, to no CIDR"
  }
  assert {
    condition     = contains(module.server["tsdb-1"].security_group_ids, output.security_group_ids["victoriametrics"]) && !contains(module.server["mon-2"].security_group_ids, output.security_group_ids["victoriametrics"])
    error_message = "the victoriametrics group should be on tsdb-1 only"
  }
  assert {
    condition = toset([for r in values(output.ingress_rules) : coalesce(r.referenced_security_group_id, r.cidr_ipv4) if r.from_port == 8428]) == toset(concat(
      [output.security_group_ids["prometheus"], output.security_group_ids["grafana"]], var.operator_cidrs
    ))
    error_message = "VictoriaMetrics (8428) should admit Prometheus, Grafana and the operators only"
  }
}
