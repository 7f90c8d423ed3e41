# The reachability policy of seed 002, as security groups:
#   fleet        - every server (app and monitoring): SSH from the operators; node
#                  exporter and log shipper from Prometheus and the operators.
#   prometheus   - from Grafana (datasource) and the operators.
#   alertmanager - from Prometheus (alert delivery), Grafana (datasource), operators.
#   loki         - pushes from every server of the fleet, and the operators.
#   grafana      - from grafana_allowed_cidrs, the operators, and Prometheus (scrape).
# A server carries `fleet` plus the group of each component it runs, so the same
# rules hold whether the components share one server or have one each.

locals {
  groups = {
    fleet        = "Every server: SSH from operators; node exporter and log shipper from Prometheus and operators"
    prometheus   = "Prometheus servers: port ${var.ports.prometheus} from Grafana and operators"
    alertmanager = "Alertmanager servers: port ${var.ports.alertmanager} from Prometheus, Grafana and operators"
    loki         = "Loki servers: push on port ${var.ports.loki} from the fleet and operators"
    grafana      = "Grafana servers: port ${var.ports.grafana} from grafana_allowed_cidrs, operators and Prometheus"
  }

  # target group => service => who may connect (other groups by name, and CIDRs).
  policy = {
    fleet = {
      ssh           = { port = var.ports.ssh, from_groups = [], cidrs = var.operator_cidrs }
      node_exporter = { port = var.ports.node_exporter, from_groups = ["prometheus"], cidrs = var.operator_cidrs }
      log_shipper   = { port = var.ports.log_shipper, from_groups = ["prometheus"], cidrs = var.operator_cidrs }
    }
    prometheus = {
      prometheus = { port = var.ports.prometheus, from_groups = ["grafana"], cidrs = var.operator_cidrs }
    }
    alertmanager = {
      alertmanager = { port = var.ports.alertmanager, from_groups = ["prometheus", "grafana"], cidrs = var.operator_cidrs }
    }
    loki = {
      loki = { port = var.ports.loki, from_groups = ["fleet"], cidrs = var.operator_cidrs }
    }
    grafana = {
      grafana = { port = var.ports.grafana, from_groups = ["prometheus"], cidrs = distinct(concat(var.operator_cidrs, var.grafana_allowed_cidrs)) }
    }
  }

  # One security group rule per (group, service, source); keys stay the same
  # when unrelated sources are added, so a change touches only its own rules.
  ingress = merge(
    merge([
      for group, services in local.policy : merge([
        for service, rule in services : {
          for source in rule.from_groups : "${group}/${service}/sg:${source}" => {
            group = group, service = service, port = rule.port, from_group = source, cidr = null
          }
        }
      ]...)
    ]...),
    merge([
      for group, services in local.policy : merge([
        for service, rule in services : {
          for cidr in rule.cidrs : "${group}/${service}/${cidr}" => {
            group = group, service = service, port = rule.port, from_group = null, cidr = cidr
          }
        }
      ]...)
    ]...),
  )
}

resource "aws_security_group" "this" {
  for_each = local.groups
  # checkov:skip=CKV2_AWS_5: attached to the instances by the root module (security_group_ids output -> modules/server); checkov's graph does not follow for_each groups across module outputs.

  name_prefix            = "${var.name}-${each.key}-"
  description            = each.value
  vpc_id                 = var.vpc_id
  revoke_rules_on_delete = true

  tags = { Name = "${var.name}-${each.key}" }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "this" {
  for_each = local.ingress

  security_group_id            = aws_security_group.this[each.value.group].id
  description                  = each.value.from_group != null ? "${each.value.service} from ${each.value.from_group} servers" : "${each.value.service} from ${each.value.cidr}"
  ip_protocol                  = "tcp"
  from_port                    = each.value.port
  to_port                      = each.value.port
  referenced_security_group_id = each.value.from_group != null ? aws_security_group.this[each.value.from_group].id : null
  cidr_ipv4                    = each.value.cidr

  tags = { Name = "${var.name}-${replace(each.key, "/", "-")}" }
}

# Egress, on the fleet group that every server carries: anything inside the VPC
# (the receiving side's rules decide), and the listed TCP ports to the internet.
resource "aws_vpc_security_group_egress_rule" "vpc" {
  security_group_id = aws_security_group.this["fleet"].id
  description       = "Anything inside the VPC: scrapes, log pushes, alerts, DNS"
  ip_protocol       = "-1"
  cidr_ipv4         = var.vpc_cidr

  tags = { Name = "${var.name}-fleet-egress-vpc" }
}

resource "aws_vpc_security_group_egress_rule" "internet" {
  for_each = toset([for p in var.internet_egress_tcp_ports : tostring(p)])

  security_group_id = aws_security_group.this["fleet"].id
  description       = "TCP ${each.key} to the internet (packages, Slack webhook, Grafana plugins)"
  ip_protocol       = "tcp"
  from_port         = tonumber(each.key)
  to_port           = tonumber(each.key)
  cidr_ipv4         = "0.0.0.0/0"

  tags = { Name = "${var.name}-fleet-egress-${each.key}" }
}
