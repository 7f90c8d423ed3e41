# Values the mock AWS provider returns where a random string would not pass the
# provider's own validation (ARNs, AMI IDs, policy JSON).

mock_data "aws_ami" {
  defaults = { id = "ami-0123456789abcdef0" }
}

mock_data "aws_iam_policy_document" {
  defaults = { json = "{\"Version\":\"2012-10-17\",\"Statement\":[]}" }
}

mock_resource "aws_cloudwatch_log_group" {
  defaults = { arn = "arn:aws:logs:eu-central-1:123456789012:log-group:/vpc/example/flow-logs" }
}

mock_resource "aws_iam_role" {
  defaults = { arn = "arn:aws:iam::123456789012:role/example-flow-logs" }
}
